package fino_test

import (
	"fmt"
	"testing"
	"time"

	"github.com/shopspring/decimal"

	"github.com/finsync/finsync/extract"
	finosb "github.com/finsync/finsync/extract/fino/sandbox"
	"github.com/finsync/finsync/extract/sandboxkit"
	"github.com/finsync/finsync/load/clickhouse"
)

// A run that one user's outage ends partial loads the other users; the
// next run reads that user alone, over the first run's window, and moves
// the cursor exactly as one clean run would have; the run after it reads
// everybody from there. Before, every run read every user again and, with
// a fault that sticks to a user, none ever succeeded.
func TestFinoRunResumesAfterTheUsersItLoaded(t *testing.T) {
	outage := &sandboxkit.Outage{}
	w := newFinoWorldWith(t, finosb.Options{UsersDown: outage})
	tenant := finoTenants[0]
	users := w.sandbox.Users(tenant)
	stream := streamNamed(t, w.streams, "fino.transactions")
	loaded := func(user string) string {
		got := w.Query(t, `SELECT concat(toString(count()), ' ', toString(sum(amount))) FROM transactions FINAL WHERE tenant = ? AND user_id = ?`, tenant, user)
		return fmt.Sprint(got)
	}
	ledger := func(user string) string {
		l, err := w.sandbox.Ledger(tenant, user)
		if err != nil {
			t.Fatal(err)
		}
		return fmt.Sprintf("[%d %s]", l.Transactions, decimal.RequireFromString(l.AmountSum).StringFixed(4))
	}

	outage.Set(users[0], true)
	first, err := w.Runner.Run(t.Context(), stream, tenant)
	if err == nil {
		t.Error("the partial run returned no error")
	}
	if first.Status != clickhouse.RunPartial {
		t.Fatalf("first run: %s %q, want partial", first.Status, first.Error)
	}
	for _, u := range users[1:] {
		if got, want := loaded(u), ledger(u); got != want {
			t.Errorf("after the partial run, user %s: %s loaded, ledger %s", u, got, want)
		}
	}
	outage.Asked()

	// Two hours later the user is back.
	outage.Set(users[0], false)
	w.SetNow(finoNow.Add(2 * time.Hour))
	second := w.Run(t, stream, tenant)
	if second.Status != clickhouse.RunSuccess || !second.WindowTo.Equal(first.WindowTo) {
		t.Fatalf("second run: %s %q, window to %s; want success over the first's window (to %s)",
			second.Status, second.Error, second.WindowTo, first.WindowTo)
	}
	got := outage.Asked()
	if got[users[0]] == 0 {
		t.Errorf("the second run asked nothing about %s, the user the first could not read", users[0])
	}
	for _, u := range users[1:] {
		if got[u] != 0 {
			t.Errorf("the second run asked %d time(s) about %s, whose rows the first loaded", got[u], u)
		}
	}
	for _, u := range users {
		if got, want := loaded(u), ledger(u); got != want {
			t.Errorf("after the resumed run, user %s: %s loaded, ledger %s", u, got, want)
		}
	}
	// The cursor one clean run at finoNow leaves.
	var cursor string
	cursor, err = w.State.Cursor(t.Context(), stream.Name, tenant)
	want := "2026-02-24 synced-before " + finoNow.Format(time.RFC3339)
	if err != nil || cursor != want {
		t.Errorf("cursor %q (%v), want %q", cursor, err, want)
	}

	// The window is done: the next run starts from the cursor, with everybody.
	w.SetNow(finoNow.Add(4 * time.Hour))
	third := w.Run(t, stream, tenant)
	if third.Status != clickhouse.RunSuccess || !third.WindowTo.Equal(finoNow.Add(4*time.Hour)) {
		t.Fatalf("third run: %s %q, window to %s", third.Status, third.Error, third.WindowTo)
	}
	got = outage.Asked()
	for _, u := range users {
		if got[u] == 0 {
			t.Errorf("the third run asked nothing about %s", u)
		}
	}
}

func streamNamed(t *testing.T, streams []extract.Stream, name string) extract.Stream {
	t.Helper()
	for _, s := range streams {
		if s.Name == name {
			return s
		}
	}
	t.Fatalf("no stream %s", name)
	return extract.Stream{}
}
