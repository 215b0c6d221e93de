package clickhouse_test

import (
	"context"
	"fmt"
	"net"
	"os/exec"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/finsync/finsync/extract"
	"github.com/finsync/finsync/load/clickhouse"
	"github.com/finsync/finsync/load/clickhouse/chtest"
)

func newSubjectsState(t *testing.T) (*clickhouse.DB, *clickhouse.State) {
	db := chtest.NewDB(t)
	return db, clickhouse.NewState(db, clickhouse.NewLoader(db, clickhouse.LoaderOptions{}))
}

func subjectIDs(subs []extract.Subject) []string {
	ids := make([]string, len(subs))
	for i, s := range subs {
		ids[i] = s.ID
	}
	return ids
}

// subjectParts counts the data parts of the subjects table: one per INSERT
// until a merge joins them.
func subjectParts(t *testing.T, db *clickhouse.DB) uint64 {
	t.Helper()
	var n uint64
	err := db.Conn().QueryRow(context.Background(), "SELECT count() FROM system.parts WHERE database = ? AND table = 'subjects' AND active",
		db.Database()).Scan(&n)
	if err != nil {
		t.Fatal(err)
	}
	return n
}

func TestAddSubjects(t *testing.T) {
	db, st := newSubjectsState(t)
	ctx := context.Background()
	before := time.Now().UTC().Truncate(time.Second)
	err := st.AddSubjects(ctx, []extract.Subject{
		{Provider: "fino", Tenant: "client-a", Kind: "user", ID: "u2", Source: clickhouse.SourceWebhook, CorrelationID: "c2"},
		{Provider: "fino", Tenant: "client-a", Kind: "user", ID: "u1", Source: clickhouse.SourceConfig},
		{Provider: "fino", Tenant: "client-a", Kind: "user", ID: "u3", Source: clickhouse.SourceWebhook, CorrelationID: "old"},
		{Provider: "fino", Tenant: "client-a", Kind: "user", ID: "u3", Source: clickhouse.SourceWebhook, CorrelationID: "new",
			Status: "consent_expired", StatusDetail: "CHALLENGE_REQUIRED"}, // the last of a key wins
	})
	if err != nil {
		t.Fatal(err)
	}
	after := time.Now().UTC()
	if n := subjectParts(t, db); n != 1 {
		t.Errorf("%d parts after one AddSubjects, want 1 (one INSERT)", n)
	}
	subs, err := st.Subjects(ctx, "fino", "client-a", "user")
	if err != nil {
		t.Fatal(err)
	}
	if got := subjectIDs(subs); !slices.Equal(got, []string{"u1", "u2", "u3"}) {
		t.Fatalf("ids %v, want u1 u2 u3 (ordered, duplicates folded)", got)
	}
	for _, s := range subs {
		if s.Provider != "fino" || s.Tenant != "client-a" || s.Kind != "user" {
			t.Errorf("%s: key %s/%s/%s", s.ID, s.Provider, s.Tenant, s.Kind)
		}
		if s.FirstSeen.Before(before) || s.FirstSeen.After(after) || !s.UpdatedAt.Equal(s.FirstSeen) {
			t.Errorf("%s: first_seen %v, updated_at %v; want both now (%v..%v)", s.ID, s.FirstSeen, s.UpdatedAt, before, after)
		}
		if s.FirstSeen.Location() != time.UTC {
			t.Errorf("%s: first_seen in %v, want UTC", s.ID, s.FirstSeen.Location())
		}
	}
	if s := subs[0]; s.Source != "config" || s.CorrelationID != "" || s.Status != "" {
		t.Errorf("u1: %+v", s)
	}
	if s := subs[1]; s.Source != "webhook" || s.CorrelationID != "c2" {
		t.Errorf("u2: %+v", s)
	}
	if s := subs[2]; s.CorrelationID != "new" || s.Status != "consent_expired" || s.StatusDetail != "CHALLENGE_REQUIRED" {
		t.Errorf("u3: %+v, want the last of the duplicates", s)
	}
	if err := st.AddSubjects(ctx, nil); err != nil {
		t.Errorf("no subjects: %v", err)
	}
}

func TestReAddSubjectKeepsFirstSeen(t *testing.T) {
	_, st := newSubjectsState(t)
	ctx := context.Background()
	jan := time.Date(2026, 1, 5, 10, 0, 0, 0, time.UTC)
	add := func(subs ...extract.Subject) {
		t.Helper()
		if err := st.AddSubjects(ctx, subs); err != nil {
			t.Fatal(err)
		}
	}
	add(extract.Subject{Provider: "fino", Tenant: "t", Kind: "user", ID: "u1", Source: clickhouse.SourceConfig, FirstSeen: jan},
		extract.Subject{Provider: "fino", Tenant: "t", Kind: "user", ID: "u2", Source: clickhouse.SourceWebhook, CorrelationID: "c1", FirstSeen: jan})
	start := time.Now().UTC().Truncate(time.Second)
	add(extract.Subject{Provider: "fino", Tenant: "t", Kind: "user", ID: "u1", Source: clickhouse.SourceWebhook, CorrelationID: "c9",
		FirstSeen: jan.AddDate(1, 0, 0)}, // a later first_seen does not move the recorded one
		extract.Subject{Provider: "fino", Tenant: "t", Kind: "user", ID: "u2", Source: clickhouse.SourceWebhook}, // no correlation id: keep c1
		extract.Subject{Provider: "fino", Tenant: "t", Kind: "user", ID: "u3", Source: clickhouse.SourceWebhook, CorrelationID: "c3"})

	subs, err := st.Subjects(ctx, "fino", "t", "user")
	if err != nil {
		t.Fatal(err)
	}
	tests := []struct {
		id, source, corr string
		firstSeenIsJan   bool
	}{
		{"u1", "webhook", "c9", true},
		{"u2", "webhook", "c1", true},
		{"u3", "webhook", "c3", false},
	}
	if len(subs) != len(tests) {
		t.Fatalf("%d subjects %+v, want %d", len(subs), subs, len(tests))
	}
	for i, tt := range tests {
		s := subs[i]
		if s.ID != tt.id || s.Source != tt.source || s.CorrelationID != tt.corr {
			t.Errorf("row %d: %+v; want id %s source %s correlation %s", i, s, tt.id, tt.source, tt.corr)
		}
		if got := s.FirstSeen.Equal(jan); got != tt.firstSeenIsJan {
			t.Errorf("%s: first_seen %v, want jan=%v", s.ID, s.FirstSeen, tt.firstSeenIsJan)
		}
		if s.UpdatedAt.Before(start) {
			t.Errorf("%s: updated_at %v, before the re-add at %v", s.ID, s.UpdatedAt, start)
		}
	}
}

// TestOperatorInsertIsASubject adds subjects the way an operator does, with
// a plain INSERT naming only the key, source, times and _version; the other
// columns default to "".
//
// Measured on 18.16: over the native protocol the server answers an INSERT
// with a data header and waits for blocks even when the values are inline,
// so db.Exec("INSERT ... VALUES (...)") hangs until its context ends (with
// literals as well as with bound parameters); clickhouse-client parses the
// VALUES itself and sends them as a block. So the test takes the two routes
// that work: INSERT ... SELECT through the driver, and INSERT ... VALUES
// through clickhouse-client when it is installed.
func TestOperatorInsertIsASubject(t *testing.T) {
	const columns = "subjects (provider, tenant, kind, subject_id, source, first_seen, updated_at, _version)"
	tests := []struct {
		name   string
		insert func(ctx context.Context, db *clickhouse.DB) error
	}{
		{"INSERT SELECT via db.Exec", func(ctx context.Context, db *clickhouse.DB) error {
			return db.Exec(ctx, "INSERT INTO "+columns+` SELECT 'fino', 'client-a', 'user', 'manual-1', 'insert',
				toDateTime('2026-02-01 08:00:00', 'UTC'), toDateTime('2026-02-01 08:00:00', 'UTC'), 1`)
		}},
		{"INSERT VALUES via clickhouse-client", func(ctx context.Context, db *clickhouse.DB) error {
			bin, err := exec.LookPath("clickhouse-client")
			if err != nil {
				t.Skip("clickhouse-client is not installed")
			}
			host, port, err := net.SplitHostPort(db.Addr())
			if err != nil {
				return err
			}
			out, err := exec.CommandContext(ctx, bin, "--host", host, "--port", port, "--database", db.Database(),
				"--query", "INSERT INTO "+columns+
					" VALUES ('fino', 'client-a', 'user', 'manual-1', 'insert', '2026-02-01 08:00:00', '2026-02-01 08:00:00', 1)").
				CombinedOutput()
			if err != nil {
				return fmt.Errorf("%v: %s", err, out)
			}
			return nil
		}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			db, st := newSubjectsState(t)
			ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
			defer cancel()
			if err := tt.insert(ctx, db); err != nil {
				t.Fatal(err)
			}
			subs, err := st.Subjects(ctx, "fino", "client-a", "user")
			if err != nil {
				t.Fatal(err)
			}
			feb := time.Date(2026, 2, 1, 8, 0, 0, 0, time.UTC)
			want := extract.Subject{Provider: "fino", Tenant: "client-a", Kind: "user", ID: "manual-1", Source: "insert",
				FirstSeen: feb, UpdatedAt: feb}
			if len(subs) != 1 || subs[0] != want {
				t.Fatalf("subjects %+v, want [%+v]", subs, want)
			}

			// The daemon hears of the same user later: the operator's first_seen stays.
			if err := st.AddSubjects(ctx, []extract.Subject{{Provider: "fino", Tenant: "client-a", Kind: "user", ID: "manual-1",
				Source: clickhouse.SourceWebhook, CorrelationID: "c1"}}); err != nil {
				t.Fatal(err)
			}
			subs, err = st.Subjects(ctx, "fino", "client-a", "user")
			if err != nil {
				t.Fatal(err)
			}
			if len(subs) != 1 || !subs[0].FirstSeen.Equal(feb) || subs[0].Source != "webhook" || subs[0].CorrelationID != "c1" {
				t.Fatalf("after the webhook: %+v", subs)
			}
		})
	}
}

func TestSubjectsIsolatedByTenantAndKind(t *testing.T) {
	_, st := newSubjectsState(t)
	ctx := context.Background()
	var subs []extract.Subject
	for _, k := range []struct{ provider, tenant, kind, id string }{
		{"fino", "client-a", "user", "a-user"},
		{"fino", "client-b", "user", "b-user"},
		{"fino", "client-a", "process", "a-process"},
		{"fimento", "client-a", "user", "fimento-user"},
		{"fino", "", "user", "no-tenant-user"},
		{"fino", "client-a", "user", "shared-id"},
		{"fino", "client-b", "user", "shared-id"},
	} {
		subs = append(subs, extract.Subject{Provider: k.provider, Tenant: k.tenant, Kind: k.kind, ID: k.id, Source: clickhouse.SourceConfig})
	}
	if err := st.AddSubjects(ctx, subs); err != nil {
		t.Fatal(err)
	}
	tests := []struct {
		provider, tenant, kind string
		want                   []string
	}{
		{"fino", "client-a", "user", []string{"a-user", "shared-id"}},
		{"fino", "client-b", "user", []string{"b-user", "shared-id"}},
		{"fino", "client-a", "process", []string{"a-process"}},
		{"fimento", "client-a", "user", []string{"fimento-user"}},
		{"fino", "", "user", []string{"no-tenant-user"}},
		{"fino", "client-c", "user", nil},
		{"fingoal", "client-a", "batch", nil},
	}
	for _, tt := range tests {
		got, err := st.Subjects(ctx, tt.provider, tt.tenant, tt.kind)
		if err != nil {
			t.Fatal(err)
		}
		if ids := subjectIDs(got); !slices.Equal(ids, tt.want) {
			t.Errorf("%s/%s/%s: %v, want %v", tt.provider, tt.tenant, tt.kind, ids, tt.want)
		}
	}
}

func TestAddSubjectsRefusesInvalid(t *testing.T) {
	db, st := newSubjectsState(t)
	ctx := context.Background()
	good := extract.Subject{Provider: "fino", Tenant: "t", Kind: "user", ID: "ok", Source: clickhouse.SourceConfig}
	tests := []struct {
		name string
		edit func(*extract.Subject)
		want string
	}{
		{"empty source", func(s *extract.Subject) { s.Source = "" }, "no source"},
		{"empty provider", func(s *extract.Subject) { s.Provider = "" }, "no provider"},
		{"empty kind", func(s *extract.Subject) { s.Kind = "" }, "no kind"},
		{"empty id", func(s *extract.Subject) { s.ID = "" }, "no subject id"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			bad := good
			bad.ID = "bad"
			tt.edit(&bad)
			err := st.AddSubjects(ctx, []extract.Subject{good, bad})
			if err == nil || !strings.Contains(err.Error(), tt.want) || !strings.Contains(err.Error(), "subject 1") {
				t.Fatalf("error %v, want one naming subject 1 and %q", err, tt.want)
			}
		})
	}
	// A refused call writes nothing, not even its valid subjects.
	if subs, err := st.Subjects(ctx, "fino", "t", "user"); err != nil || len(subs) != 0 {
		t.Fatalf("after refused calls: %+v, %v", subs, err)
	}
	if n := subjectParts(t, db); n != 0 {
		t.Fatalf("%d parts after refused calls", n)
	}
}

// TestAddManySubjects registers more keys than fit in a query's text
// (max_query_size is 256 KiB): the lookup of first_seen must not depend on it.
func TestAddManySubjects(t *testing.T) {
	db, st := newSubjectsState(t)
	ctx := context.Background()
	const n = 20_000
	jan := time.Date(2026, 1, 1, 0, 0, 0, 0, time.UTC)
	subs := make([]extract.Subject, n)
	for i := range subs {
		subs[i] = extract.Subject{Provider: "fino", Tenant: "client-a", Kind: "user",
			ID: fmt.Sprintf("user-%06d-%s", i, strings.Repeat("x", 20)), Source: clickhouse.SourceConfig, FirstSeen: jan}
	}
	if err := st.AddSubjects(ctx, subs); err != nil {
		t.Fatal(err)
	}
	for i := range subs {
		subs[i].FirstSeen, subs[i].Source = time.Time{}, clickhouse.SourceWebhook
	}
	if err := st.AddSubjects(ctx, subs); err != nil {
		t.Fatal(err)
	}
	if p := subjectParts(t, db); p > 2 {
		t.Errorf("%d parts after two AddSubjects, want at most 2", p)
	}
	got, err := st.Subjects(ctx, "fino", "client-a", "user")
	if err != nil {
		t.Fatal(err)
	}
	if len(got) != n {
		t.Fatalf("%d subjects, want %d", len(got), n)
	}
	for _, s := range got {
		if !s.FirstSeen.Equal(jan) || s.Source != "webhook" {
			t.Fatalf("%s: first_seen %v source %s; want jan, webhook", s.ID, s.FirstSeen, s.Source)
		}
	}
}

// An operator's INSERT naming only the key is a complete, new subject.
func TestOperatorInsertOfTheKeyOnly(t *testing.T) {
	db, st := newSubjectsState(t)
	ctx := context.Background()
	before := time.Now().Add(-time.Second)
	if err := db.Exec(ctx, "INSERT INTO subjects (provider, tenant, kind, subject_id) SELECT 'fino', 'client-a', 'user', 'by-hand'"); err != nil {
		t.Fatal(err)
	}
	subs, err := st.Subjects(ctx, "fino", "client-a", "user")
	if err != nil {
		t.Fatal(err)
	}
	if len(subs) != 1 || subs[0].Source != clickhouse.SourceInsert || subs[0].FirstSeen.Before(before.Truncate(time.Second)) {
		t.Fatalf("subjects %+v: want source insert, first seen now", subs)
	}
	// Its version is on the daemon's scale: a later daemon write still wins.
	if err := st.AddSubjects(ctx, []extract.Subject{{Provider: "fino", Tenant: "client-a", Kind: "user", ID: "by-hand",
		Source: clickhouse.SourceWebhook, CorrelationID: "c1"}}); err != nil {
		t.Fatal(err)
	}
	subs, _ = st.Subjects(ctx, "fino", "client-a", "user")
	if len(subs) != 1 || subs[0].CorrelationID != "c1" || subs[0].Source != clickhouse.SourceWebhook {
		t.Fatalf("after the daemon's write: %+v", subs)
	}
}
