-- The bridge node that carried a SIP call (PBX_BRIDGE_NODE_ID). Several
-- bridges may share one database: at start, crash recovery ends only the
-- calls its own node left live, never another node's calls in progress.
-- NULL: opened before this column existed, or not a bridge call (AMI).
ALTER TABLE attendances ADD COLUMN node TEXT;
