package clickhouse

import (
	"context"
	"fmt"
	"strings"
	"time"

	"github.com/finsync/finsync/transform"
)

// StatusRevoked is the registry status of a subject whose data the provider
// deleted (consent revoked, deleted at the provider). Its rows were deleted
// from the warehouse; no stream extracts it again, and registering it again
// (config, webhook) keeps the status. Only a row that sets another status
// explicitly (an operator's INSERT) reactivates it.
const StatusRevoked = "revoked"

// DeleteSubjectRows deletes every row of one subject: in each data table
// with a user_id column the rows of (provider, tenant, user_id = userID),
// and in etl_rejects the provider's rejects of that tenant whose record_key
// starts with userID + "/" (extractors of per-subject data key rejects so).
// It returns the tables it issued a delete for, after the deletions are done.
//
// ALTER TABLE ... DELETE is a mutation, asynchronous on every server
// version (18.16 has no mutations_sync), so DeleteSubjectRows then polls
// system.mutations until none of those tables has one pending, bounded by
// ctx and by maxMutationWait. In cluster mode the deletes go where the rows
// are (DB.Alter).
func (s *State) DeleteSubjectRows(ctx context.Context, provider, tenant, userID string) ([]string, error) {
	if provider == "" || userID == "" {
		return nil, fmt.Errorf("deleting a subject's rows needs a provider and a user id")
	}
	var tables []string
	for _, t := range transform.Tables() {
		if _, ok := t.Schema.FieldsByName("user_id"); !ok {
			continue
		}
		if err := s.db.Alter(ctx, t.Name, "DELETE WHERE provider = ? AND tenant = ? AND user_id = ?",
			provider, tenant, userID); err != nil {
			return tables, fmt.Errorf("deleting %s/%s/%s from %s: %w", provider, tenant, userID, t.Name, err)
		}
		tables = append(tables, t.Name)
	}
	if err := s.db.Alter(ctx, transform.EtlRejects.Name,
		"DELETE WHERE provider = ? AND tenant = ? AND startsWith(record_key, ?)", provider, tenant, userID+"/"); err != nil {
		return tables, fmt.Errorf("deleting %s/%s/%s from %s: %w", provider, tenant, userID, transform.EtlRejects.Name, err)
	}
	tables = append(tables, transform.EtlRejects.Name)
	return tables, s.waitMutations(ctx, tables)
}

// maxMutationWait bounds waiting for deletions of a few rows; a mutation
// still running after it keeps running on the server.
const maxMutationWait = 5 * time.Minute

// waitMutations polls until no mutation of tables is pending: on this
// server, or in cluster mode on one replica of each shard (the mutations of
// the local tables).
func (s *State) waitMutations(ctx context.Context, tables []string) error {
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
