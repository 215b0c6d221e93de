package sandboxkit

import (
	"fmt"
	"strconv"
	"strings"
)

// Parse reads a fault matrix as `finsync sandbox --faults` and
// FINSYNC_SANDBOX_FAULTS take it: comma-separated name:probability pairs,
//
//	429:0.1,500:0.05,slow:0.05,expire:0.02,malformed:0.01,truncate:0.01,dup:0.05
//
// plus optional seed:N (default 1) and retry-after:N (seconds, default 1),
// and the hostile pages: huge-field:BYTES, endless-field:1, endless-array:1
// (see Knobs). Every problem is reported at once.
func Parse(spec string) (Knobs, error) {
	k := Knobs{Seed: 1, RetryAfter: 1}
	var problems []string
	for _, part := range strings.Split(spec, ",") {
		part = strings.TrimSpace(part)
		if part == "" {
			continue
		}
		name, value, ok := strings.Cut(part, ":")
		if !ok {
			problems = append(problems, fmt.Sprintf("%q: want name:value", part))
			continue
		}
		switch name {
		case "huge-field":
			n, err := strconv.ParseInt(value, 10, 64)
			if err != nil || n < 0 {
				problems = append(problems, fmt.Sprintf("%s: %q is not a number of bytes", name, value))
			}
			k.HugeField = n
			continue
		case "endless-field", "endless-array":
			on, err := strconv.ParseBool(value)
			if err != nil {
				problems = append(problems, fmt.Sprintf("%s: %q is not 1 or 0", name, value))
			}
			if name == "endless-field" {
				k.EndlessField = on
			} else {
				k.EndlessArray = on
			}
			continue
		case "seed", "retry-after":
			n, err := strconv.ParseUint(value, 10, 32)
			if err != nil {
				problems = append(problems, fmt.Sprintf("%s: %q is not a whole number", name, value))
			} else if name == "seed" {
				k.Seed = n
			} else {
				k.RetryAfter = int(n)
			}
			continue
		}
		p, err := strconv.ParseFloat(value, 64)
		if err != nil || p < 0 || p > 1 {
			problems = append(problems, fmt.Sprintf("%s: %q is not a probability in 0..1", name, value))
			continue
		}
		switch name {
		case "429":
			k.RateLimit = p
		case "500", "5xx":
			k.ServerError = p
		case "slow":
			k.Slow = p
		case "expire":
			k.TokenExpiry = p
		case "malformed":
			k.Malformed = p
		case "truncate":
			k.Truncated = p
		case "dup":
			k.Duplicate = p
		default:
			problems = append(problems, fmt.Sprintf("unknown fault %q (429, 500, slow, expire, malformed, truncate, dup, seed, retry-after, huge-field, endless-field, endless-array)", name))
		}
	}
	if len(problems) > 0 {
		return k, fmt.Errorf("fault matrix: %s", strings.Join(problems, "; "))
	}
	return k, nil
}
