package schedules

import (
	"context"
	"crypto/sha256"
	"encoding/binary"
	"fmt"
	"strconv"
	"strings"
	"time"

	"github.com/finsync/finsync/load/clickhouse"
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

// ReplicasStream is the etl_state stream under which each sharded daemon
// records that it is alive (Shard.Beat), so that the replicas can check
// that together they cover every shard (Shard.Check).
const ReplicasStream = "finsync.replicas"

// Beat records in etl_state that owner, a daemon, runs shard s now, and
// with which count: "<count> <unix millis> <owner id> <pid> <host>".
func (s Shard) Beat(ctx context.Context, state *clickhouse.State, owner Owner, now time.Time) error {
	return state.SetCheckpoint(ctx, ReplicasStream, "", "shard:"+strconv.Itoa(s.Index),
		fmt.Sprintf("%d %d %s %d %s", s.Count, now.UnixMilli(), owner.ID, owner.PID, owner.Host))
}

// beat is a replica's record as Beat wrote it.
type beat struct {
	count int
	at    time.Time
	owner Owner
}

func parseBeat(v string) beat {
	var b beat
	var ms int64
	f := strings.SplitN(v, " ", 5)
	if len(f) >= 2 {
		b.count, _ = strconv.Atoi(f[0])
		ms, _ = strconv.ParseInt(f[1], 10, 64)
		b.at = time.UnixMilli(ms)
	}
	if len(f) == 5 {
		b.owner.ID, b.owner.Host = f[2], f[4]
		b.owner.PID, _ = strconv.Atoi(f[3])
	}
	return b
}

// Check reads the replicas' beats and says what is wrong with the split:
// another daemon (not owner) that beat shard s since this one started (two
// replicas with the same FINSYNC_SHARD), a shard of s.Count no daemon ran
// within stale (its subjects are not synced: fewer replicas than the
// count), a replica counting differently, or a live shard s.Count (more
// replicas than the count). A shard is missing only once this daemon has
// run for stale since started: replicas starting together have not all
// beaten yet. Call it before owner's Beat: a beat of s found then is the
// last one, this daemon's own unless another replica beat since.
// FINSYNC_SHARD's count is written by hand beside the replica count (a
// Kubernetes pod learns its index, not how many pods there are): this is
// the check that the two agree.
func (s Shard) Check(ctx context.Context, state *clickhouse.State, owner Owner, started, now time.Time, stale time.Duration) ([]string, error) {
	var problems []string
	for k := 0; k <= s.Count; k++ {
		v, err := state.Checkpoint(ctx, ReplicasStream, "", "shard:"+strconv.Itoa(k))
		if err != nil {
			return nil, err
		}
		b := parseBeat(v)
		n := b.count
		alive := v != "" && now.Sub(b.at) <= stale
		if k == s.Index {
			// A beat from before this daemon started is its predecessor's
			// (a restart), not a twin's.
			if alive && b.owner.ID != owner.ID && !b.at.Before(started) {
				problems = append(problems, fmt.Sprintf("two replicas run shard %s (this one and %s): each FINSYNC_SHARD index must be on one replica", s, b.owner))
			}
			continue
		}
		switch {
		case k == s.Count && alive:
			problems = append(problems, fmt.Sprintf("a daemon runs shard %d/%d while this one counts %d shards: there are more replicas than FINSYNC_SHARD's count", k, n, s.Count))
		case k == s.Count, !alive && now.Sub(started) <= stale:
		case !alive:
			problems = append(problems, fmt.Sprintf("no daemon has run shard %d/%d for %s: its subjects and streams are not synced; FINSYNC_SHARD's count must be the number of replicas", k, s.Count, stale))
		case n != s.Count:
			problems = append(problems, fmt.Sprintf("shard %d runs with FINSYNC_SHARD %d/%d, this one with %s: every replica must have the same count", k, k, n, s))
		}
	}
	return problems, nil
}
