package clickhouse

import (
	"context"
	"fmt"
	"time"

	"github.com/finsync/finsync/transform"
)

// Expired is what DeleteExpiredSegments removed.
type Expired struct {
	Partitions []string // dropped whole
	Rows       uint64   // deleted from partitions that also hold current rows
}

// DeleteExpiredSegments removes the segment members whose expires_on is
// before today (UTC): finAPI deleted those segments, and the warehouse
// follows. It works on every server version, without TTL: a month
// partition holding only expired rows is dropped whole (cheap); expired rows
// sharing a partition with current ones are deleted by a mutation, which
// 18.16 applies in the background (current_segment_members hides them
// meanwhile).
func (db *DB) DeleteExpiredSegments(ctx context.Context, today time.Time) (Expired, error) {
	var ex Expired
	table := db.table(transform.SegmentMembers.Name)
	day := today.UTC().Format(time.DateOnly)
	rows, err := db.conn.Query(ctx, "SELECT toString(toYYYYMM(creation_date)) AS p, max(expires_on) < toDate(?), countIf(expires_on < toDate(?)) FROM "+
		table+" GROUP BY p ORDER BY p", day, day)
	if err != nil {
		return ex, fmt.Errorf("finding expired segment members: %w", err)
	}
	defer rows.Close()
	type partition struct {
		id      string
		all     bool
		expired uint64
	}
	var parts []partition
	for rows.Next() {
		var p partition
		var all uint8
		if err := rows.Scan(&p.id, &all, &p.expired); err != nil {
			return ex, err
		}
		p.all = all == 1
		parts = append(parts, p)
	}
	if err := rows.Err(); err != nil {
		return ex, err
	}
	mixed := false
	for _, p := range parts {
		switch {
		case p.all:
			if err := db.Alter(ctx, transform.SegmentMembers.Name, "DROP PARTITION "+p.id); err != nil {
				return ex, fmt.Errorf("dropping expired partition %s of segment_members: %w", p.id, err)
			}
			ex.Partitions = append(ex.Partitions, p.id)
		case p.expired > 0:
			mixed = true
			ex.Rows += p.expired
		}
	}
	if mixed {
		if err := db.Alter(ctx, transform.SegmentMembers.Name, "DELETE WHERE expires_on < toDate('"+day+"')"); err != nil {
			return ex, fmt.Errorf("deleting expired segment members: %w", err)
		}
	}
	return ex, nil
}
