package schedules

import (
	"context"
	"encoding/json"
	"fmt"
	"slices"
	"strings"
	"time"

	"github.com/finsync/finsync/extract"
	"github.com/finsync/finsync/load/clickhouse"
)

// resumePoint is what a run of a per-subject stream that ended early
// (partial or failed) leaves for the next: the window it read and the
// subjects whose records are loaded. The next run that starts from the same
// cursor reads the other subjects over that same window (its end and its
// start, which the stream's cursor may carry), so when it succeeds the
// cursor moves exactly as the first run's would have. Under faults that
// fail a few subjects each time, runs then converge instead of reading
// every subject again and failing again.
//
// The unit is the subject, not the page: a provider's page numbers are no
// stable position once its data changed between two runs, and skipping a
// page could skip rows; a subject's pages are read again as a whole.
//
// It lives in etl_state under the key "resume" (per shard like the
// cursor), written only once the run's rows were loaded, and emptied by
// the run that finishes the window.
type resumePoint struct {
	Cursor  string    `json:"cursor"`  // the cursor the unfinished run started from
	To      time.Time `json:"to"`      // its window's end
	Started time.Time `json:"started"` // its start: its rows' extracted_at
	Read    []string  `json:"read"`    // subjects whose records are loaded
}

// resumes says whether runs of this kind leave and take resume points:
// scheduled runs of per-subject streams. A backfill keeps its own
// checkpoint per window, a reconciliation reads everything on purpose, and
// a triggered run collects only what a webhook announced.
func (run *runBook) resumes() bool {
	o := run.opts
	return run.stream.SubjectKind != "" && !run.backfill && !o.reconcile && !o.triggered
}

// resumeKey is the resume point's etl_state key, per shard like the
// cursor's.
func (run *runBook) resumeKey() string {
	return "resume" + strings.TrimPrefix(run.cursorKey(), clickhouse.CursorKey(""))
}

// readResume returns the resume point the last run left, or nil if there
// is none or it was left from another cursor than the stream's now (a later
// run finished its window).
func (run *runBook) readResume(ctx context.Context) (*resumePoint, error) {
	v, err := run.r.State.Checkpoint(ctx, run.stream.Name, run.tenant, run.resumeKey())
	if err != nil || v == "" {
		return nil, err
	}
	var p resumePoint
	if err := json.Unmarshal([]byte(v), &p); err != nil {
		return nil, fmt.Errorf("resume point of %s/%s does not decode (%w): %q", run.stream.Name, run.tenant, err, v)
	}
	cursor, err := run.cursor(ctx)
	if err != nil || cursor != p.Cursor {
		return nil, err
	}
	return &p, nil
}

// resume makes the run the continuation of p: p's window and start, and
// only the subjects p has not read.
func (run *runBook) resume(p *resumePoint, window *extract.Window, start *time.Time) {
	run.resumed = p
	window.To, *start = p.To.UTC(), p.Started.UTC()
	read := make(map[string]bool, len(p.Read))
	for _, id := range p.Read {
		read[id] = true
	}
	run.subjects = slices.DeleteFunc(run.subjects, func(s extract.Subject) bool { return read[s.ID] })
}

// leaveResume writes what the next run resumes from, once the run's rows
// were loaded: nothing after a success (the window is done), else the
// subjects read by this run and the one it resumed.
func (run *runBook) leaveResume(ctx context.Context, cursor string) error {
	if run.row.Status == clickhouse.RunSuccess {
		if run.resumed == nil {
			return nil
		}
		return run.r.State.SetCheckpoint(ctx, run.stream.Name, run.tenant, run.resumeKey(), "")
	}
	read := run.reg.readIDs()
	if len(read) == 0 {
		return nil // as the run found it
	}
	p := resumePoint{Cursor: cursor, To: run.row.WindowTo, Started: run.lineage.ExtractedAt, Read: read}
	if run.resumed != nil {
		p.Read = append(p.Read, run.resumed.Read...)
	}
	v, err := json.Marshal(p)
	if err != nil {
		return err
	}
	return run.r.State.SetCheckpoint(ctx, run.stream.Name, run.tenant, run.resumeKey(), string(v))
}
