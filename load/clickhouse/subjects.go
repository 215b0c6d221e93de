package clickhouse

import (
	"context"
	"errors"
	"fmt"
	"time"

	"github.com/ClickHouse/clickhouse-go/v2/ext"

	"github.com/finsync/finsync/extract"
	"github.com/finsync/finsync/transform"
)

// Where a subject of the registry came from (the subjects.source column).
const (
	SourceConfig     = "config"     // listed in the daemon's configuration
	SourceWebhook    = "webhook"    // announced by a provider's webhook
	SourceSubmission = "submission" // created by the daemon itself (e.g. a FinGoal batch)
	SourceInsert     = "insert"     // a plain INSERT by an operator
)

// subjectKey is the registry's natural key (its ORDER BY).
type subjectKey struct{ provider, tenant, kind, id string }

func keyOf(s extract.Subject) subjectKey { return subjectKey{s.Provider, s.Tenant, s.Kind, s.ID} }

// AddSubjects records subs in the registry with one INSERT and waits until
// ClickHouse accepted it. A subject already there keeps its first_seen (read
// back for all of subs in one query); a new one gets FirstSeen if set, else
// now. updated_at is now and every row gets a fresh _version, so these rows
// replace the registry's older ones. An empty CorrelationID keeps the one
// already recorded (an event without a correlation id does not erase the
// last analysis's), and an empty Status keeps extract.SubjectRevoked and
// extract.SubjectQuarantined; every other column takes the new value. When
// subs holds one key twice the last one wins. Provider, Kind, ID and Source must not be empty; Tenant may be.
// Nothing is written when one subject is invalid.
func (s *State) AddSubjects(ctx context.Context, subs []extract.Subject) error {
	if len(subs) == 0 {
		return nil
	}
	// Validate all, then keep the last occurrence of each key, in the order
	// the keys first appeared.
	index := make(map[subjectKey]int, len(subs))
	uniq := make([]extract.Subject, 0, len(subs))
	for i, sub := range subs {
		if err := validSubject(sub); err != nil {
			return fmt.Errorf("subject %d (%s/%s/%s/%s): %w", i, sub.Provider, sub.Tenant, sub.Kind, sub.ID, err)
		}
		if j, ok := index[keyOf(sub)]; ok {
			uniq[j] = sub
			continue
		}
		index[keyOf(sub)] = len(uniq)
		uniq = append(uniq, sub)
	}

	existing, err := s.existingSubjects(ctx, uniq)
	if err != nil {
		return err
	}

	now := time.Now().UTC().Truncate(time.Second)
	version := s.Version()
	w := transform.NewRowWriter(s.mem, transform.Subjects)
	defer w.Release()
	for _, sub := range uniq {
		first := now
		if !sub.FirstSeen.IsZero() {
			first = sub.FirstSeen.UTC()
		}
		corr := sub.CorrelationID
		status, detail := sub.Status, sub.StatusDetail
		if old, ok := existing[keyOf(sub)]; ok {
			first = old.FirstSeen
			if corr == "" {
				corr = old.CorrelationID
			}
			// A subject whose data was deleted, or is quarantined, stays
			// so when config or a webhook registers it again.
			if status == "" && (old.Status == extract.SubjectRevoked || old.Status == extract.SubjectQuarantined) {
				status, detail = old.Status, old.StatusDetail
			}
		}
		if err := w.Append(sub.Provider, sub.Tenant, sub.Kind, sub.ID, sub.Source, corr,
			status, detail, first, now, version); err != nil {
			return err
		}
	}
	rec := w.Record()
	defer rec.Release()
	if err := s.loader.Insert(ctx, transform.Subjects, rec); err != nil {
		return fmt.Errorf("recording %d subjects: %w", len(uniq), err)
	}
	return nil
}

func validSubject(sub extract.Subject) error {
	switch {
	case sub.Source == "":
		return errors.New("no source")
	case sub.Provider == "":
		return errors.New("no provider")
	case sub.Kind == "":
		return errors.New("no kind")
	case sub.ID == "":
		return errors.New("no subject id")
	}
	return nil
}

// existingSubjects reads the registry's current rows for the keys of subs in
// one query. The keys travel as an external table rather than in the query
// text, so a long list (a config with thousands of users) stays within the
// server's max_query_size and max_ast_elements.
func (s *State) existingSubjects(ctx context.Context, subs []extract.Subject) (map[subjectKey]extract.Subject, error) {
	keys, err := ext.NewTable("subject_keys",
		ext.Column("provider", "String"),
		ext.Column("tenant", "String"),
		ext.Column("kind", "String"),
		ext.Column("subject_id", "String"),
	)
	if err != nil {
		return nil, err
	}
	for _, sub := range subs {
		if err := keys.Append(sub.Provider, sub.Tenant, sub.Kind, sub.ID); err != nil {
			return nil, err
		}
	}
	ctx = withExternalTables(ctx, keys)
	rows, err := s.db.conn.Query(ctx, "SELECT provider, tenant, kind, subject_id, correlation_id, status, status_detail, first_seen FROM "+
		s.db.table(transform.Subjects.Name)+" FINAL WHERE (provider, tenant, kind, subject_id) IN "+
		"(SELECT provider, tenant, kind, subject_id FROM subject_keys)")
	if err != nil {
		return nil, fmt.Errorf("reading subjects already registered: %w", err)
	}
	defer rows.Close()
	found := make(map[subjectKey]extract.Subject)
	for rows.Next() {
		var sub extract.Subject
		if err := rows.Scan(&sub.Provider, &sub.Tenant, &sub.Kind, &sub.ID, &sub.CorrelationID, &sub.Status, &sub.StatusDetail, &sub.FirstSeen); err != nil {
			return nil, fmt.Errorf("reading subjects already registered: %w", err)
		}
		sub.FirstSeen = sub.FirstSeen.UTC()
		found[keyOf(sub)] = sub
	}
	if err := rows.Err(); err != nil {
		return nil, fmt.Errorf("reading subjects already registered: %w", err)
	}
	return found, nil
}

// Subjects returns the registry's current subjects of one kind for provider
// and tenant, ordered by id: rows written by AddSubjects and rows operators
// INSERTed by hand alike (columns they leave out read as "").
func (s *State) Subjects(ctx context.Context, provider, tenant, kind string) ([]extract.Subject, error) {
	rows, err := s.db.conn.Query(ctx, "SELECT subject_id, source, correlation_id, status, status_detail, first_seen, updated_at FROM "+
		s.db.table(transform.Subjects.Name)+" FINAL WHERE provider = ? AND tenant = ? AND kind = ? ORDER BY subject_id",
		provider, tenant, kind)
	if err != nil {
		return nil, fmt.Errorf("reading subjects %s/%s/%s: %w", provider, tenant, kind, err)
	}
	defer rows.Close()
	var subs []extract.Subject
	for rows.Next() {
		sub := extract.Subject{Provider: provider, Tenant: tenant, Kind: kind}
		if err := rows.Scan(&sub.ID, &sub.Source, &sub.CorrelationID, &sub.Status, &sub.StatusDetail,
			&sub.FirstSeen, &sub.UpdatedAt); err != nil {
			return nil, fmt.Errorf("reading subjects %s/%s/%s: %w", provider, tenant, kind, err)
		}
		sub.FirstSeen, sub.UpdatedAt = sub.FirstSeen.UTC(), sub.UpdatedAt.UTC()
		subs = append(subs, sub)
	}
	if err := rows.Err(); err != nil {
		return nil, fmt.Errorf("reading subjects %s/%s/%s: %w", provider, tenant, kind, err)
	}
	return subs, nil
}
