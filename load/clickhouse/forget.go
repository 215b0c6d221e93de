package clickhouse

import (
	"context"
	"fmt"
	"strings"
	"time"

	ch "github.com/ClickHouse/clickhouse-go/v2"

	"github.com/finsync/finsync/extract"
	"github.com/finsync/finsync/transform"
)

// Deletion is what DeleteSubjectRows deleted.
type Deletion struct {
	// Tables are the tables a delete was issued for.
	Tables []string
	// Derived are the users other providers know the subject's data under
	// (FinGoal's opaque uid of an enriched subject, kind "user"), whose rows
	// were deleted too. The caller marks them revoked in the registry, so
	// that no stream (fingoal.user_tags) reads them again.
	Derived []extract.Subject
}

// DeleteSubjectRows deletes every row of one subject and every row derived
// from it:
//
//   - in each data table with a user_id column the rows of (provider,
//     tenant, user_id = userID), and in etl_rejects the provider's rejects
//     of that tenant whose record_key starts with userID + "/" (extractors
//     of per-subject data key rejects so), and any reject keyed
//     provider/tenant/userID/... (a reader of its rows that could not use
//     one);
//   - the copies other providers made of its data, found through the
//     enrichment ledger (enrichment_submissions rows whose source is the
//     subject): for each enriching provider, tenant and opaque uid, the rows
//     of that user in every data table (FinGoal's enriched transactions,
//     user_tags, finsights) and the enriching provider's rejects keyed
//     uid/..., naming the uid in their raw payload, or keyed
//     batch_request_id/enrich_transaction_id of one of the subject's ledger
//     rows;
//   - last, the subject's ledger rows, so that a deletion that fails half
//     way still finds the copies when it is retried.
//
// It returns once the deletions are done: ALTER TABLE ... DELETE is a
// mutation, asynchronous on every server version (18.16 has no
// mutations_sync), so DeleteSubjectRows then polls system.mutations until
// none of those tables has one pending, bounded by ctx and by
// maxMutationWait. The deletes use literal values only, no subqueries
// (replicated tables refuse non-deterministic mutations). In cluster mode
// they go where the rows are (DB.Alter).
func (s *State) DeleteSubjectRows(ctx context.Context, provider, tenant, userID string) (Deletion, error) {
	var del Deletion
	if provider == "" || userID == "" {
		return del, fmt.Errorf("deleting a subject's rows needs a provider and a user id")
	}
	touched := map[string]bool{}
	exec := func(table, where string, args ...any) error {
		// A mutation rewrites parts even when nothing matches (18.16), so
		// a subject without rows there (a forged or never-loaded id) costs
		// one SELECT, not an ALTER.
		var n uint64
		if err := s.db.conn.QueryRow(ctx, "SELECT count() FROM "+s.db.table(table)+" WHERE "+where, args...).Scan(&n); err != nil {
			return fmt.Errorf("counting rows of %s/%s/%s in %s: %w", provider, tenant, userID, table, err)
		}
		if n == 0 {
			return nil
		}
		if err := s.db.Alter(ctx, table, "DELETE WHERE "+where, args...); err != nil {
			return fmt.Errorf("deleting rows of %s/%s/%s from %s: %w", provider, tenant, userID, table, err)
		}
		if !touched[table] {
			touched[table] = true
			del.Tables = append(del.Tables, table)
		}
		return nil
	}

	derived, err := s.derivedUsers(ctx, provider, tenant, userID)
	if err != nil {
		return del, err
	}
	for _, d := range derived {
		if err := s.deleteUser(exec, d.Provider, d.Tenant, d.ID); err != nil {
			return del, err
		}
		if err := exec(transform.EtlRejects.Name, "provider = ? AND tenant = ? AND (startsWith(record_key, ?) OR position(raw, ?) > 0)",
			d.Provider, d.Tenant, d.ID+"/", d.ID); err != nil {
			return del, err
		}
		keys, err := s.derivedRejectKeys(ctx, provider, tenant, userID, d)
		if err != nil {
			return del, err
		}
		for len(keys) > 0 {
			n := min(len(keys), 2000) // ~150 kB of query: within max_query_size
			if err := exec(transform.EtlRejects.Name, "provider = ? AND tenant = ? AND record_key IN ?", d.Provider, d.Tenant,
				toGroupSet(keys[:n])); err != nil {
				return del, err
			}
			keys = keys[n:]
		}
		del.Derived = append(del.Derived, d)
	}

	if err := s.deleteUser(exec, provider, tenant, userID); err != nil {
		return del, err
	}
	// Its own rejects, and those of a reader of its rows (a FinGoal reject
	// of a row it could not send is keyed provider/tenant/user/...).
	if err := exec(transform.EtlRejects.Name, "(provider = ? AND tenant = ? AND startsWith(record_key, ?)) OR startsWith(record_key, ?)",
		provider, tenant, userID+"/", provider+"/"+tenant+"/"+userID+"/"); err != nil {
		return del, err
	}
	if err := exec(transform.EnrichmentSubmissions.Name, "source_provider = ? AND source_tenant = ? AND user_id = ?", provider, tenant, userID); err != nil {
		return del, err
	}
	return del, s.waitMutations(ctx, del.Tables)
}

// deleteUser deletes (provider, tenant, user_id) from every data table with
// a user_id column but the ledger, whose user_id is a source's.
func (s *State) deleteUser(exec func(table, where string, args ...any) error, provider, tenant, userID string) error {
	for _, t := range transform.Tables() {
		if _, ok := t.Schema.FieldsByName("user_id"); !ok || t.Name == transform.EnrichmentSubmissions.Name {
			continue
		}
		if err := exec(t.Name, "provider = ? AND tenant = ? AND user_id = ?", provider, tenant, userID); err != nil {
			return err
		}
	}
	return nil
}

// derivedUsers are the (enriching provider, tenant, uid) the ledger holds
// for a source subject, every version of its rows considered.
func (s *State) derivedUsers(ctx context.Context, provider, tenant, userID string) ([]extract.Subject, error) {
	rows, err := s.db.conn.Query(ctx, "SELECT DISTINCT provider, tenant, uid FROM "+s.db.table(transform.EnrichmentSubmissions.Name)+
		" WHERE source_provider = ? AND source_tenant = ? AND user_id = ? AND uid != '' ORDER BY provider, tenant, uid", provider, tenant, userID)
	if err != nil {
		return nil, fmt.Errorf("finding the copies of %s/%s/%s: %w", provider, tenant, userID, err)
	}
	defer rows.Close()
	var out []extract.Subject
	for rows.Next() {
		d := extract.Subject{Kind: "user", Source: SourceSubmission}
		if err := rows.Scan(&d.Provider, &d.Tenant, &d.ID); err != nil {
			return nil, err
		}
		out = append(out, d)
	}
	return out, rows.Err()
}

// derivedRejectKeys are the record keys (batch_request_id/opaque
// transaction id) under which the enriching provider d may have rejected
// transactions of the source subject.
func (s *State) derivedRejectKeys(ctx context.Context, provider, tenant, userID string, d extract.Subject) ([]string, error) {
	rows, err := s.db.conn.Query(ctx, "SELECT DISTINCT concat(batch_request_id, '/', enrich_transaction_id) FROM "+
		s.db.table(transform.EnrichmentSubmissions.Name)+" WHERE provider = ? AND tenant = ? AND source_provider = ? AND source_tenant = ? AND user_id = ?"+
		" AND batch_request_id != '' AND enrich_transaction_id != ''", d.Provider, d.Tenant, provider, tenant, userID)
	if err != nil {
		return nil, fmt.Errorf("finding the rejects of the copies of %s/%s/%s: %w", provider, tenant, userID, err)
	}
	defer rows.Close()
	var keys []string
	for rows.Next() {
		var k string
		if err := rows.Scan(&k); err != nil {
			return nil, err
		}
		keys = append(keys, k)
	}
	return keys, rows.Err()
}

// maxMutationWait bounds waiting for deletions of a few rows; a mutation
// still running after it keeps running on the server.
const maxMutationWait = 5 * time.Minute

// waitMutations polls until no mutation of tables is pending: on this
// server, or in cluster mode on one replica of each shard (the mutations of
// the local tables).
func (s *State) waitMutations(ctx context.Context, tables []string) error {
	if len(tables) == 0 {
		return nil
	}
	ctx, cancel := context.WithTimeout(ctx, maxMutationWait)
	defer cancel()
	mutations := "system.mutations"
	local := make([]string, len(tables))
	for i, t := range tables {
		local[i] = s.db.localName(t)
	}
	if s.db.cluster != "" {
		mutations = "cluster(" + quoteString(s.db.cluster) + ", system, mutations)"
	}
	query := "SELECT count() FROM " + mutations + " WHERE database = ? AND has(?, table) AND is_done = 0"
	for wait := 20 * time.Millisecond; ; wait = min(wait*2, time.Second) {
		var pending uint64
		if err := s.db.conn.QueryRow(ctx, query, s.db.database, local).Scan(&pending); err != nil {
			return fmt.Errorf("waiting for deletions in %s: %w", strings.Join(tables, ", "), err)
		}
		if pending == 0 {
			return nil
		}
		t := time.NewTimer(wait)
		select {
		case <-ctx.Done():
			t.Stop()
			return fmt.Errorf("waiting for deletions in %s: %d still running: %w", strings.Join(tables, ", "), pending, ctx.Err())
		case <-t.C:
		}
	}
}

// toGroupSet binds values as a parenthesised list, for IN.
func toGroupSet(values []string) ch.GroupSet {
	set := ch.GroupSet{Value: make([]any, len(values))}
	for i, v := range values {
		set.Value[i] = v
	}
	return set
}

// RevokedWithRows returns the revoked subjects a run of provider for tenant
// may have written rows of after their deletion (a run that read a subject
// before another stream's run found it revoked loads its rows after that
// run deleted them):
//
//   - the revoked subjects of (provider, tenant) that still have rows in a
//     data table, rejects keyed id/..., or ledger rows naming them as the
//     source;
//   - with ledger, the revoked subjects of any provider whose ledger rows
//     under (provider, tenant) still exist: copies the run made of them
//     (FinGoal's enrichment).
//
// It costs one small query of the registry when the tenant has no revoked
// subject. Every version of a row counts (no FINAL): a row replaced by a
// newer one still holds the subject's data until a merge.
func (s *State) RevokedWithRows(ctx context.Context, provider, tenant string, ledger bool) ([]extract.Subject, error) {
	var out []extract.Subject
	var revoked uint64
	if err := s.db.conn.QueryRow(ctx, "SELECT count() FROM "+s.db.table(transform.Subjects.Name)+
		" FINAL WHERE provider = ? AND tenant = ? AND status = ?", provider, tenant, extract.SubjectRevoked).Scan(&revoked); err != nil {
		return nil, fmt.Errorf("reading revoked subjects of %s/%s: %w", provider, tenant, err)
	}
	if revoked > 0 {
		set := "(SELECT subject_id FROM " + s.db.table(transform.Subjects.Name) + " FINAL WHERE provider = ? AND tenant = ? AND status = ?)"
		var parts []string
		var args []any
		for _, t := range transform.Tables() {
			if _, ok := t.Schema.FieldsByName("user_id"); !ok || t.Name == transform.EnrichmentSubmissions.Name {
				continue
			}
			parts = append(parts, "SELECT user_id FROM "+s.db.table(t.Name)+" WHERE provider = ? AND tenant = ? AND user_id IN "+set)
			args = append(args, provider, tenant, provider, tenant, extract.SubjectRevoked)
		}
		parts = append(parts, "SELECT splitByChar('/', record_key)[1] AS user_id FROM "+s.db.table(transform.EtlRejects.Name)+
			" WHERE provider = ? AND tenant = ? AND position(record_key, '/') > 0 AND user_id IN "+set,
			"SELECT user_id FROM "+s.db.table(transform.EnrichmentSubmissions.Name)+" WHERE source_provider = ? AND source_tenant = ? AND user_id IN "+set)
		args = append(args, provider, tenant, provider, tenant, extract.SubjectRevoked, provider, tenant, provider, tenant, extract.SubjectRevoked)
		ids, err := s.strings(ctx, "SELECT DISTINCT user_id FROM ("+strings.Join(parts, " UNION ALL ")+") ORDER BY user_id", args...)
		if err != nil {
			return nil, fmt.Errorf("finding revoked subjects of %s/%s with rows: %w", provider, tenant, err)
		}
		for _, id := range ids {
			out = append(out, extract.Subject{Provider: provider, Tenant: tenant, ID: id[0], Status: extract.SubjectRevoked})
		}
	}
	if !ledger {
		return out, nil
	}
	sources, err := s.strings(ctx, "SELECT DISTINCT source_provider, source_tenant, user_id FROM "+s.db.table(transform.EnrichmentSubmissions.Name)+
		" WHERE provider = ? AND tenant = ? AND (source_provider, source_tenant, user_id) IN (SELECT provider, tenant, subject_id FROM "+
		s.db.table(transform.Subjects.Name)+" FINAL WHERE status = ?) ORDER BY source_provider, source_tenant, user_id", provider, tenant, extract.SubjectRevoked)
	if err != nil {
		return nil, fmt.Errorf("finding copies %s/%s made of revoked subjects: %w", provider, tenant, err)
	}
	for _, src := range sources {
		out = append(out, extract.Subject{Provider: src[0], Tenant: src[1], ID: src[2], Status: extract.SubjectRevoked})
	}
	return out, nil
}

// strings runs a query whose columns are strings and returns its rows.
func (s *State) strings(ctx context.Context, query string, args ...any) ([][]string, error) {
	rows, err := s.db.conn.Query(ctx, query, args...)
	if err != nil {
		return nil, err
	}
	defer rows.Close()
	var out [][]string
	for rows.Next() {
		row := make([]string, len(rows.Columns()))
		ptrs := make([]any, len(row))
		for i := range row {
			ptrs[i] = &row[i]
		}
		if err := rows.Scan(ptrs...); err != nil {
			return nil, err
		}
		out = append(out, row)
	}
	return out, rows.Err()
}
