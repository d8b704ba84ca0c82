-- Calls followed through AMI (Asterisk handled them itself).
--
-- Asterisk's MixMonitor file lives on the PBX's disk, at a path Asterisk
-- chose; it is not under our recordings dir, and recording_path is served
-- from there (joined to the recordings dir), so it gets its own column and
-- is only ever shown, never opened.
ALTER TABLE attendances ADD COLUMN recording_remote_path TEXT;

-- One attendance per Asterisk call (Linkedid), even when two nodes, or a
-- re-sync after a reconnect, see the same call open.
CREATE UNIQUE INDEX attendances_ami_call_ref ON attendances (call_ref) WHERE source = 'ami';
CREATE INDEX attendances_by_call_ref ON attendances (call_ref);
