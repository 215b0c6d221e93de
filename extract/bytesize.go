package extract

import (
	"fmt"
	"strconv"
	"strings"
)

// ByteSize is a size setting: a number of bytes, or with a unit (KiB, MiB,
// GiB; KB, MB, GB are taken as the same powers of two, since nobody means
// 10^6 when sizing memory).
type ByteSize int64

var byteUnits = []struct {
	name string
	n    int64
}{{"GiB", 1 << 30}, {"GB", 1 << 30}, {"G", 1 << 30}, {"MiB", 1 << 20}, {"MB", 1 << 20}, {"M", 1 << 20},
	{"KiB", 1 << 10}, {"KB", 1 << 10}, {"K", 1 << 10}, {"B", 1}}

// UnmarshalText reads "1048576", "1MiB", "1.5 GiB".
func (b *ByteSize) UnmarshalText(text []byte) error {
	s := strings.TrimSpace(string(text))
	mult := int64(1)
	for _, u := range byteUnits {
		if len(s) > len(u.name) && strings.EqualFold(s[len(s)-len(u.name):], u.name) {
			s, mult = strings.TrimSpace(s[:len(s)-len(u.name)]), u.n
			break
		}
	}
	if n, err := strconv.ParseInt(s, 10, 64); err == nil && n >= 0 && n <= (1<<62)/mult {
		*b = ByteSize(n * mult)
		return nil
	}
	f, err := strconv.ParseFloat(s, 64)
	if err != nil || f < 0 || f*float64(mult) > 1<<62 {
		return fmt.Errorf("want bytes, or a number with KiB, MiB or GiB (like 1GiB)")
	}
	*b = ByteSize(f * float64(mult))
	return nil
}

func (b ByteSize) String() string { return Bytes(int64(b)) }

// Bytes formats n for a person: "1 MiB", "1.5 GiB", "1000 bytes".
func Bytes(n int64) string {
	for _, u := range []struct {
		name string
		n    int64
	}{{"GiB", 1 << 30}, {"MiB", 1 << 20}, {"KiB", 1 << 10}} {
		if n >= u.n {
			v := strconv.FormatFloat(float64(n)/float64(u.n), 'f', 2, 64)
			return strings.TrimSuffix(strings.TrimRight(v, "0"), ".") + " " + u.name
		}
	}
	return strconv.FormatInt(n, 10) + " bytes"
}
