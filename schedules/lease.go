package schedules

import (
	"context"
	"crypto/rand"
	"encoding/hex"
	"errors"
	"fmt"
	"os"
	"syscall"
	"time"

	"github.com/finsync/finsync/load/clickhouse"
)

// A run holds a lease on its stream and tenant, kept in etl_state, so that
// no two processes (two daemons, a daemon and `finsync once`, two
// backfills) run a stream for a tenant at once: the daemon's per-stream
// lock holds only inside one process, and a second run resends what the
// first is sending (FinGoal submissions, finAPI jobs: billed twice).
//
// ClickHouse has no compare-and-swap, so a claim is decided by what every
// claimant reads after writing. Each claimant inserts its own row (key
// lease:<id>), then reads every claim of the stream and tenant. An INSERT
// is visible to every SELECT that starts after it returned (one server,
// or one replicated table read where it was written), so of two racing
// claimants at least one sees the other: if A's read missed B's claim, it
// ran before B's INSERT returned, so B's read ran after A's INSERT
// returned. The rules, for the live claims read besides its own:
//
//   - none: the claimant holds the lease;
//   - one claimed earlier (by claimed time, then id): it refuses;
//   - only later ones: a later claimant that missed this claim holds the
//     lease, one that saw it refuses and withdraws its claim within
//     milliseconds; so it reads again every leasePoll and holds the lease
//     once they are gone, or refuses after leaseWait.
//
// So two claimants never both hold the lease, and two racing ones leave one
// holding it. The normal path is one INSERT and one SELECT.
//
// The holder renews its claim with each heartbeat of its run and releases
// it when the run ends. A claim lasts leaseBeats heartbeats (3 minutes,
// less within a short timeout), so a killed process's lease lapses after
// that; one left by a process of this host that no longer exists is
// ignored at once.
//
// Cluster mode: etl_state is one replicated table on every node, and
// replication is asynchronous; processes reading and writing through
// different nodes can miss each other's claims for the replication delay
// (usually under a second). Point the daemons at one node, or the lease
// holds only outside that window.
const (
	leaseBeats = 3
	leasePoll  = 100 * time.Millisecond
	leaseWait  = 2 * time.Second
	// A claim's rows are deleted a day after its last write (it lapsed
	// minutes after it; a day is far beyond any clock skew), once a stream
	// has lapsedLeaseRows such claims: each start of a process leaves one
	// per stream and tenant. Runner.DeleteLapsedLeases does it, at start-up.
	lapsedLeaseAge  = 24 * time.Hour
	lapsedLeaseRows = 100
)

// RunNotStarted is the status of a run the Runner did not start because
// another process holds its stream's lease for the tenant (a *Busy
// error); such a run is not recorded in etl_runs.
const RunNotStarted = "not-started"

// Owner is a process that runs streams: its host and pid say who it is,
// the random ID tells it apart from every other process.
type Owner struct {
	Host string
	PID  int
	ID   string
}

// NewOwner is this process, with a new random id.
func NewOwner() Owner {
	host, _ := os.Hostname()
	b := make([]byte, 8)
	rand.Read(b)
	return Owner{Host: host, PID: os.Getpid(), ID: hex.EncodeToString(b)}
}

func (o Owner) String() string { return fmt.Sprintf("host %s pid %d", o.Host, o.PID) }

// Busy is why a run did not start: another process holds the lease of
// its stream and tenant.
type Busy struct{ Holder clickhouse.Lease }

func (b *Busy) Error() string {
	h := b.Holder
	who := Owner{Host: h.Host, PID: h.PID}.String()
	if h.Shard != "" {
		who += " (shard " + h.Shard + ")"
	}
	return fmt.Sprintf("%s/%s is being run by %s since %s (lease until %s); not started", h.Stream, h.Tenant, who,
		h.Claimed.UTC().Format(time.DateTime), h.Until.UTC().Format(time.DateTime))
}

// lease is a run's claim, while it holds it.
type lease struct {
	state *clickhouse.State
	mine  clickhouse.Lease
	ttl   time.Duration
}

// acquire claims the lease of stream for tenant for ttl, or returns a
// *Busy error naming the process that holds it.
func (r *Runner) acquire(ctx context.Context, stream, tenant string, ttl time.Duration) (*lease, error) {
	owner := r.Owner
	if owner.ID == "" {
		// Every Runner of this process alike (a run's lease left behind
		// when ClickHouse was down is its own to take again).
		owner.Host, _ = os.Hostname()
		owner.PID = os.Getpid()
		owner.ID = fmt.Sprintf("%s.%d", owner.Host, owner.PID)
	}
	// Wall clock (other processes compare their own), in the milliseconds
	// a claim is stored with: the rivals' claims are compared with this one
	// as read back, and two claimants must order the pair alike.
	now := time.Now().Truncate(time.Millisecond)
	l := &lease{state: r.State, ttl: ttl, mine: clickhouse.Lease{Stream: stream, Tenant: tenant, ID: owner.ID,
		Shard: r.Shard.String(), Host: owner.Host, PID: owner.PID, Claimed: now, Until: now.Add(ttl)}}
	if err := r.State.PutLease(ctx, l.mine); err != nil {
		return nil, fmt.Errorf("claiming the lease of %s/%s: %w", stream, tenant, err)
	}
	for waited := time.Duration(0); ; waited += leasePoll {
		rival, err := l.rival(ctx, owner)
		switch {
		case err != nil:
			return nil, errors.Join(err, l.release(ctx))
		case rival == nil:
			return l, nil
		case before(*rival, l.mine) || waited >= leaseWait:
			return nil, errors.Join(&Busy{Holder: *rival}, l.release(ctx))
		}
		select {
		case <-ctx.Done():
			return nil, errors.Join(ctx.Err(), l.release(ctx))
		case <-time.After(leasePoll):
		}
	}
}

// rival is the first live claim of another process on work that overlaps
// this one's, nil if none.
func (l *lease) rival(ctx context.Context, owner Owner) (*clickhouse.Lease, error) {
	all, err := l.state.Leases(ctx, l.mine.Stream, l.mine.Tenant)
	if err != nil {
		return nil, err
	}
	now := time.Now()
	var first *clickhouse.Lease
	for i, c := range all {
		if c.ID == owner.ID || !c.Until.After(now) || !overlaps(c.Shard, l.mine.Shard) || gone(c, owner) {
			continue
		}
		if first == nil || before(c, *first) {
			first = &all[i]
		}
	}
	return first, nil
}

// before orders claims by when they were claimed, then by id: every
// claimant orders the claims it reads alike.
func before(a, b clickhouse.Lease) bool {
	if !a.Claimed.Equal(b.Claimed) {
		return a.Claimed.Before(b.Claimed)
	}
	return a.ID < b.ID
}

// overlaps says whether two claimants' shards may share work: the
// unsharded one does all of it, and shards of different counts overlap.
func overlaps(a, b string) bool {
	if a == "" || b == "" || a == b {
		return true
	}
	sa, errA := ParseShard(a)
	sb, errB := ParseShard(b)
	return errA != nil || errB != nil || sa.Count != sb.Count
}

// gone says whether c was claimed by a process of this host that no
// longer exists (killed): its claim need not lapse first. A process of this
// pid is taken for alive: it may be this one (two Runners of one process).
func gone(c clickhouse.Lease, owner Owner) bool {
	if c.Host != owner.Host || c.PID == owner.PID || c.PID <= 0 {
		return false
	}
	p, err := os.FindProcess(c.PID)
	if err != nil {
		return true
	}
	err = p.Signal(syscall.Signal(0))
	return errors.Is(err, os.ErrProcessDone) || errors.Is(err, syscall.ESRCH)
}

// renew extends the claim by its ttl from now.
func (l *lease) renew(ctx context.Context) error {
	l.mine.Until = time.Now().Add(l.ttl)
	return l.state.PutLease(ctx, l.mine)
}

// release ends the claim now, whatever ctx says.
func (l *lease) release(ctx context.Context) error {
	l.mine.Until = time.Now()
	if err := l.state.PutLease(context.WithoutCancel(ctx), l.mine); err != nil {
		return fmt.Errorf("releasing the lease of %s/%s (it lapses by itself): %w", l.mine.Stream, l.mine.Tenant, err)
	}
	return nil
}
