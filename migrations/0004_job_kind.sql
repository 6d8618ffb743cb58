-- 0004: what a job is: a shell command, or a file operation (ssh_read_file,
-- ssh_write_file, ssh_list_dir, ssh_upload, ssh_download) recorded with its
-- parameters and result, never its content.
ALTER TABLE jobs ADD COLUMN kind TEXT NOT NULL DEFAULT 'command' CHECK (kind IN ('command', 'file'));
