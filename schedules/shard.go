package schedules

import (
	"crypto/sha256"
	"encoding/binary"
	"fmt"
	"strconv"
	"strings"
)

// Shard is this process's part of the work when n daemon replicas (or
// `finsync once` processes) split it (FINSYNC_SHARD=i/n): a subject
// belongs to shard hash(provider, tenant, subject id) mod n, and the
// tenant-level work of a stream (its whole run, or the async jobs of a
// per-subject stream) to shard hash(stream, tenant) mod n. The hash (the
// first 8 bytes of SHA-256) is the same in every process, release and
// machine, and spreads similar ids evenly. The zero Shard does all the work.
type Shard struct{ Index, Count int }

// ParseShard reads "i/n" (0 <= i < n); "" is the zero Shard.
func ParseShard(s string) (Shard, error) {
	if s == "" {
		return Shard{}, nil
	}
	a, b, ok := strings.Cut(s, "/")
	i, err1 := strconv.Atoi(a)
	n, err2 := strconv.Atoi(b)
	if !ok || err1 != nil || err2 != nil || n < 1 || i < 0 || i >= n {
		return Shard{}, fmt.Errorf("%q: want i/n with 0 <= i < n, e.g. 0/2", s)
	}
	return Shard{Index: i, Count: n}, nil
}

// All reports whether s does all the work (no sharding, or 0/1).
func (s Shard) All() bool { return s.Count <= 1 }

func (s Shard) String() string {
	if s.All() {
		return ""
	}
	return fmt.Sprintf("%d/%d", s.Index, s.Count)
}

// Owns reports whether the work named by parts is this shard's.
func (s Shard) Owns(parts ...string) bool {
	if s.All() {
		return true
	}
	h := sha256.New()
	for _, p := range parts {
		h.Write([]byte(p))
		h.Write([]byte{0})
	}
	return binary.BigEndian.Uint64(h.Sum(nil))%uint64(s.Count) == uint64(s.Index)
}

// OwnsSubject reports whether subject id of provider and tenant is this
// shard's.
func (s Shard) OwnsSubject(provider, tenant, id string) bool { return s.Owns(provider, tenant, id) }

// OwnsTenant reports whether the tenant-level work of stream for tenant is
// this shard's.
func (s Shard) OwnsTenant(stream, tenant string) bool { return s.Owns("stream", stream, tenant) }
