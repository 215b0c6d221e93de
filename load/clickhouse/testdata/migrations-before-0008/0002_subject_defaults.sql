-- Operators add subjects with a plain INSERT naming only the key:
--   INSERT INTO subjects (provider, tenant, kind, subject_id) VALUES ('fino', 'my-tenant', 'user', '...')
-- Defaults make such a row complete: source 'insert', seen now (so streams
-- read its whole history), and a _version on the daemon's nanosecond scale,
-- so the operator's row replaces older ones instead of losing to them.
ALTER TABLE subjects MODIFY COLUMN source String DEFAULT 'insert';
ALTER TABLE subjects MODIFY COLUMN first_seen DateTime('UTC') DEFAULT now();
ALTER TABLE subjects MODIFY COLUMN updated_at DateTime('UTC') DEFAULT now();
ALTER TABLE subjects MODIFY COLUMN _version UInt64 DEFAULT toUInt64(now()) * 1000000000;
