package fimento_test

import (
	"fmt"
	"slices"
	"testing"

	"github.com/shopspring/decimal"

	"github.com/finsync/finsync/extract"
	fimentosb "github.com/finsync/finsync/extract/fimento/sandbox"
	"github.com/finsync/finsync/extract/sandboxkit"
	"github.com/finsync/finsync/load/clickhouse"
)

// One process Fimento cannot serve does not stop the others: the run loads
// them and ends partial; the next run asks only for that process.
func TestFimentoOneProcessDownDoesNotStopTheOthers(t *testing.T) {
	outage := &sandboxkit.Outage{}
	w := newFimentoWorldWith(t, fimentosb.Options{ProcessesDown: outage})
	bank := fimentoBanks[0]
	completed := w.completedProcesses(t)[bank]
	if len(completed) < 2 {
		t.Fatalf("%d completed processes; the test needs two", len(completed))
	}
	loaded := func(p string) string {
		return fmt.Sprint(w.Query(t, `SELECT concat(toString(count()), ' ', toString(sum(amount))) FROM transactions FINAL WHERE tenant = ? AND user_id = ?`, bank, p))
	}
	ledger := func(p string) string {
		l, err := w.sandbox.Ledger(bank, p)
		if err != nil {
			t.Fatal(err)
		}
		return fmt.Sprintf("[%d %s]", l.Transactions, decimal.RequireFromString(l.AmountSum).StringFixed(4))
	}
	stream := w.streams[slices.IndexFunc(w.streams, func(s extract.Stream) bool { return s.Name == "fimento.transactions" })]

	outage.Set(completed[0], true)
	first, err := w.Runner.Run(t.Context(), stream, bank)
	if first.Status != clickhouse.RunPartial || err == nil {
		t.Fatalf("first run: %s %q (%v), want partial", first.Status, first.Error, err)
	}
	for _, p := range completed[1:] {
		if got, want := loaded(p), ledger(p); got != want {
			t.Errorf("after the partial run, process %s: %s loaded, ledger %s", p, got, want)
		}
	}
	outage.Asked()

	outage.Set(completed[0], false)
	second := w.Run(t, stream, bank)
	if second.Status != clickhouse.RunSuccess {
		t.Fatalf("second run: %s %q", second.Status, second.Error)
	}
	got := outage.Asked()
	if got[completed[0]] == 0 {
		t.Errorf("the second run asked nothing about %s, the process the first could not read", completed[0])
	}
	for _, p := range completed[1:] {
		if got[p] != 0 {
			t.Errorf("the second run asked %d time(s) about %s, whose rows the first loaded", got[p], p)
		}
	}
	for _, p := range completed {
		if got, want := loaded(p), ledger(p); got != want {
			t.Errorf("after the resumed run, process %s: %s loaded, ledger %s", p, got, want)
		}
	}
}
