-- finAPI keeps a segment 14 days after its creation. A member is current
-- through its expires_on day (UTC) and gone from this view the day after,
-- on every server version (no TTL); the daemon also deletes expired rows.
CREATE VIEW IF NOT EXISTS current_segment_members AS
SELECT *
FROM segment_members FINAL
WHERE expires_on >= toDate(now(), 'UTC');

-- The members of the newest current job per mandator and segment type:
-- "who is in the segment now", without adding up older snapshots.
CREATE VIEW IF NOT EXISTS latest_segment_members AS
SELECT *
FROM current_segment_members
WHERE (provider, tenant, segment_type, job_id) IN (
    SELECT provider, tenant, segment_type, argMax(job_id, (creation_date, extracted_at))
    FROM current_segment_members
    GROUP BY provider, tenant, segment_type
);
