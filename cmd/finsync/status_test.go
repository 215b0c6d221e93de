package main

import (
	"context"
	"net/http"
	"net/http/httptest"
	"strings"
	"testing"
	"time"

	"github.com/finsync/finsync/load/clickhouse"
	"github.com/finsync/finsync/load/clickhouse/chtest"
	"github.com/finsync/finsync/schedules"
)

func TestHealth(t *testing.T) {
	now := time.Date(2026, 12, 6, 12, 0, 0, 0, time.UTC)
	ss, err := schedules.Parse("t.yaml", []byte("defaults:\n  jitter: 0s\n  timeout: 30m\nstreams:\n  a.hourly:\n    schedule: \"0 * * * *\"\n"),
		map[string]schedules.ParamsCheck{"a.hourly": nil})
	if err != nil {
		t.Fatal(err)
	}
	hourly, _ := ss.Find("a.hourly")
	run := func(status string) *clickhouse.Run { return &clickhouse.Run{Status: status} }
	for _, tc := range []struct {
		name    string
		last    *clickhouse.Run
		success time.Time
		down    bool
		want    string
	}{
		{"never ran", nil, time.Time{}, false, "unknown"},
		{"ClickHouse down", run(clickhouse.RunSuccess), now, true, "unknown"},
		{"failed", run(clickhouse.RunFailed), now.Add(-time.Minute), false, "failing"},
		{"abandoned", run(clickhouse.RunAbandoned), now, false, "failing"},
		{"success within two periods", run(clickhouse.RunSuccess), now.Add(-2 * time.Hour), false, "ok"},
		{"no success for three periods", run(clickhouse.RunPartial), now.Add(-3 * time.Hour), false, "stale"},
		{"partial, recent success", run(clickhouse.RunPartial), now.Add(-time.Hour), false, "notes"},
	} {
		if got := health(hourly, tc.last, tc.success, now, tc.down); got != tc.want {
			t.Errorf("%s: %s, want %s", tc.name, got, tc.want)
		}
	}
}

// With ClickHouse down the status page still shows the streams and their
// schedules, under a banner that says so, and answers 503.
func TestStatusPageWithClickHouseDown(t *testing.T) {
	c, err := LoadConfig(context.Background(), lookupFrom(nil))
	if err != nil {
		t.Fatal(err)
	}
	d := &schedules.Daemon{}
	for _, p := range providers(c, nil, nil) {
		for _, s := range p.Streams {
			sched, _ := c.schedule(s.Name)
			d.Jobs = append(d.Jobs, schedules.Job{Stream: s, Schedule: sched})
		}
	}
	db := chtest.NewDB(t)
	state := clickhouse.NewState(db, nil)
	db.Close() // the outage
	srv := httptest.NewServer(statusPage(c, d, state))
	defer srv.Close()
	resp, err := http.Get(srv.URL)
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	dom, png := browse(t, srv.URL, "status-page-outage.png")
	if resp.StatusCode != http.StatusServiceUnavailable || !strings.Contains(dom, `id="outage"`) || !strings.Contains(dom, "does not answer") ||
		!strings.Contains(dom, `data-stream="fino.transactions" data-health="unknown"`) || !strings.Contains(dom, "0 * * * *") && !strings.Contains(dom, "*/6") {
		t.Errorf("status %d, page:\n%.3000s", resp.StatusCode, dom)
	}
	if !strings.Contains(dom, `id="summary"`) || !strings.Contains(dom, "unknown</span>") {
		t.Errorf("no summary:\n%.2000s", dom)
	}
	checkNotBlank(t, png)
}
