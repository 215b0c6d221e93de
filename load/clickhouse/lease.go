package clickhouse

import (
	"context"
	"fmt"
	"strconv"
	"strings"
	"time"

	"github.com/finsync/finsync/transform"
)

// leaseKeyPrefix starts the etl_state keys of leases: "lease:<id>@<shard>".
const leaseKeyPrefix = "lease:"

// Lease is one process's claim to run a stream for a tenant (how claims
// decide who runs: schedules, lease.go). It is a row of etl_state under
// the claimant's own key, so claims of different processes never replace
// each other and a claimant's renewals and release replace its claim.
type Lease struct {
	Stream, Tenant string
	ID             string // the claimant's random id, one per process
	Shard          string // the claimant's FINSYNC_SHARD, "" for all the work
	Host           string // where the claimant runs (os.Hostname)
	PID            int
	Claimed        time.Time
	Until          time.Time // expiry; a release sets it to now
}

// PutLease writes l, replacing the claimant's earlier row of the same
// stream and tenant. value is "<claimed> <until> <pid> <host>", the times
// in Unix milliseconds (created_at and next_poll_at, whole seconds, are
// for people reading etl_state).
func (s *State) PutLease(ctx context.Context, l Lease) error {
	value := fmt.Sprintf("%d %d %d %s", l.Claimed.UnixMilli(), l.Until.UnixMilli(), l.PID, l.Host)
	return s.write(ctx, transform.EtlState, l.Stream, l.Tenant, leaseKeyPrefix+l.ID+"@"+l.Shard, value, "lease",
		l.Claimed.UTC(), l.Until.UTC(), time.Now().UTC(), s.Version())
}

// Leases returns every claim ever written for stream and tenant, expired
// and released ones included, each as last written.
func (s *State) Leases(ctx context.Context, stream, tenant string) ([]Lease, error) {
	// FINAL keeps each claimant's newest row; only key columns are
	// filtered, so no filter can pick an older row of a claimant.
	rows, err := s.db.conn.Query(ctx, "SELECT substring(key, ?), value FROM "+s.db.table(transform.EtlState.Name)+
		" FINAL WHERE stream = ? AND tenant = ? AND startsWith(key, ?)", len(leaseKeyPrefix)+1, stream, tenant, leaseKeyPrefix)
	if err != nil {
		return nil, fmt.Errorf("reading the leases of %s/%s: %w", stream, tenant, err)
	}
	defer rows.Close()
	var out []Lease
	for rows.Next() {
		var key, value string
		if err := rows.Scan(&key, &value); err != nil {
			return nil, err
		}
		l := Lease{Stream: stream, Tenant: tenant}
		l.ID, l.Shard, _ = strings.Cut(key, "@")
		f := strings.SplitN(value, " ", 4)
		if len(f) < 4 {
			continue // not a claim this version wrote
		}
		claimed, err1 := strconv.ParseInt(f[0], 10, 64)
		until, err2 := strconv.ParseInt(f[1], 10, 64)
		pid, err3 := strconv.Atoi(f[2])
		if err1 != nil || err2 != nil || err3 != nil {
			continue
		}
		l.Claimed, l.Until, l.PID, l.Host = time.UnixMilli(claimed).UTC(), time.UnixMilli(until).UTC(), pid, f[3]
		out = append(out, l)
	}
	return out, rows.Err()
}

// DeleteLapsedLeases deletes stream's lease rows last written before
// `before` (a claim lapses minutes after its last write: pass a time well
// past that), once at least atLeast claims are that old, and returns how
// many claims it deleted. Every process claims under an id of its own, so each start
// of a process leaves a row per stream and tenant it ran: without this
// they would pile up for ever. A lapsed claim decides nothing, and the
// older rows of a live claimant going too change nothing (its newest row
// is its claim). Counting first keeps the mutation rare.
func (s *State) DeleteLapsedLeases(ctx context.Context, stream string, before time.Time, atLeast uint64) (uint64, error) {
	var n uint64
	// Claims by their newest row, whatever the merges left.
	err := s.db.conn.QueryRow(ctx, "SELECT count() FROM (SELECT key, max(_version) AS newest FROM "+s.db.table(transform.EtlState.Name)+
		" WHERE stream = ? AND startsWith(key, ?) GROUP BY key) WHERE newest < ?", stream, leaseKeyPrefix, uint64(before.UnixNano())).Scan(&n)
	if err != nil {
		return 0, fmt.Errorf("counting the lapsed leases of %s: %w", stream, err)
	}
	if n == 0 || n < atLeast {
		return 0, nil
	}
	// _version is the write's wall clock in ns (State.Version), and no time
	// zone can change its meaning.
	if err := s.db.Alter(ctx, transform.EtlState.Name, "DELETE WHERE stream = ? AND startsWith(key, ?) AND _version < ?",
		stream, leaseKeyPrefix, uint64(before.UnixNano())); err != nil {
		return 0, fmt.Errorf("deleting the lapsed leases of %s: %w", stream, err)
	}
	return n, nil
}
