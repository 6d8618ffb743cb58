package main

import (
	"context"
	"encoding/base64"
	"errors"
	"fmt"
	"io/fs"
	"strconv"
	"strings"
	"unicode/utf8"

	"github.com/modelcontextprotocol/go-sdk/mcp"

	"github.com/sshjobs/sshjobs/jobs"
	"github.com/sshjobs/sshjobs/sessions"
)

// The file tools. Each call is a job of kind file: its parameters (never the
// content) are the job's command, a one-line summary its output, so
// ssh_jobs and the database show what was read and changed. They have no
// output schema, only structuredContent: the schemas would cost more of the
// tools/list budget than the five tools' inputs together.

type readFileIn struct {
	Host     string `json:"host" jsonschema:"as for ssh_run"`
	Path     string `json:"path" jsonschema:"remote path; ~ is the home"`
	Offset   int64  `json:"offset,omitempty" jsonschema:"byte offset (next_offset of the last read)"`
	MaxBytes int    `json:"max_bytes,omitempty" jsonschema:"default 262144, max 2097152"`
	Sudo     bool   `json:"sudo,omitempty" jsonschema:"as root, through sudo"`
}

type fileOut struct {
	JobID  string `json:"job_id"`
	Path   string `json:"path"`
	Size   int64  `json:"size"`
	Mode   string `json:"mode"` // octal, e.g. 0644
	Mtime  string `json:"mtime"`
	SHA256 string `json:"sha256"`
}

type readFileOut struct {
	fileOut
	Offset     int64  `json:"offset"`
	NextOffset int64  `json:"next_offset"`
	Truncated  bool   `json:"truncated"`
	Encoding   string `json:"encoding"` // utf-8 or base64
	Content    string `json:"content"`
}

type writeFileIn struct {
	Host     string `json:"host" jsonschema:"as for ssh_run"`
	Path     string `json:"path" jsonschema:"remote path; ~ is the home"`
	Content  string `json:"content" jsonschema:"the new content (max 2 MiB)"`
	Encoding string `json:"encoding,omitempty" jsonschema:"base64 if content is base64"`
	Append   bool   `json:"append,omitempty" jsonschema:"append instead of replace"`
	MakeDirs bool   `json:"make_dirs,omitempty" jsonschema:"create missing folders"`
	Mode     string `json:"mode,omitempty" jsonschema:"octal, e.g. 0600; default: keep"`
	IfSHA256 string `json:"if_sha256,omitempty" jsonschema:"write only if the file's sha256 is this"`
	Sudo     bool   `json:"sudo,omitempty" jsonschema:"as root, through sudo"`
}

type writeFileOut struct {
	fileOut
	Created bool `json:"created"`
}

type listDirIn struct {
	Host       string `json:"host" jsonschema:"as for ssh_run"`
	Path       string `json:"path" jsonschema:"remote folder; ~ is the home"`
	All        bool   `json:"all,omitempty" jsonschema:"include dot files"`
	MaxEntries int    `json:"max_entries,omitempty" jsonschema:"default 1000, max 10000"`
}

type entryOut struct {
	Name   string `json:"name"`
	Type   string `json:"type"`
	Size   int64  `json:"size"`
	Mode   string `json:"mode"`
	Mtime  string `json:"mtime"`
	Target string `json:"target,omitempty"`
}

type listDirOut struct {
	JobID     string     `json:"job_id"`
	Path      string     `json:"path"`
	Entries   []entryOut `json:"entries"`
	Total     int        `json:"total"`
	Truncated bool       `json:"truncated"`
}

func addFileTools(s *mcp.Server, a *app) {
	addTool(s, &mcp.Tool{
		Name:        "ssh_read_file",
		Description: "Read a remote file (SFTP): text, or base64 if binary; sha256 of the whole file. Page with offset.",
		Annotations: &mcp.ToolAnnotations{Title: "Read file", ReadOnlyHint: true, OpenWorldHint: &yes},
	}, func(ctx context.Context, req *mcp.CallToolRequest, in readFileIn) (*mcp.CallToolResult, any, error) {
		if ask, err := a.askFirst(ctx, req, in.Host, in.Sudo, ""); err != nil || ask != nil {
			return ask, nil, err
		}
		out, err := a.readFile(ctx, in)
		if err != nil {
			return nil, nil, err
		}
		return textResult(out.text()), out, nil
	})
	addTool(s, &mcp.Tool{
		Name:        "ssh_write_file",
		Description: "Write a remote file atomically (SFTP), keeping its owner and mode.",
		Annotations: &mcp.ToolAnnotations{Title: "Write file", DestructiveHint: &yes, OpenWorldHint: &yes},
	}, func(ctx context.Context, req *mcp.CallToolRequest, in writeFileIn) (*mcp.CallToolResult, any, error) {
		if ask, err := a.askFirst(ctx, req, in.Host, in.Sudo, ""); err != nil || ask != nil {
			return ask, nil, err
		}
		out, err := a.writeFile(ctx, in)
		if err != nil {
			return nil, nil, err
		}
		return textResult(out.text()), out, nil
	})
	addTool(s, &mcp.Tool{
		Name:        "ssh_list_dir",
		Description: "List a remote folder (SFTP).",
		Annotations: &mcp.ToolAnnotations{Title: "List folder", ReadOnlyHint: true, OpenWorldHint: &yes},
	}, func(ctx context.Context, req *mcp.CallToolRequest, in listDirIn) (*mcp.CallToolResult, any, error) {
		if ask, err := a.askFirst(ctx, req, in.Host, false, ""); err != nil || ask != nil {
			return ask, nil, err
		}
		out, err := a.listDir(ctx, in)
		if err != nil {
			return nil, nil, err
		}
		return textResult(out.text()), out, nil
	})
}

func textResult(text string) *mcp.CallToolResult {
	return &mcp.CallToolResult{Content: []mcp.Content{&mcp.TextContent{Text: text}}}
}

// fileJob runs op as a file job on host: the engine resolves the host and
// records the job; op gets the destination's file operations, and the
// job's context, which ssh_cancel ends too. A failure
// comes back as a tool error naming the job.
func (a *app) fileJob(ctx context.Context, host, command string, sudo bool, op func(ctx context.Context, f *sessions.Files) (summary string, err error)) (*jobs.Job, error) {
	if sudo {
		command += " sudo"
	}
	j, err := a.eng.RunInline(ctx, jobs.Spec{Target: host, Command: command, Sudo: sudo}, func(ctx context.Context, j *jobs.Job) (string, error) {
		var summary string
		err := a.exec.WithFiles(ctx, j, func(f *sessions.Files) error {
			var err error
			summary, err = op(ctx, f)
			return err
		})
		return summary, err
	})
	if err != nil {
		if j != nil {
			return j, fmt.Errorf("%w (job %s)", fileError(err), j.ID)
		}
		return nil, err
	}
	return j, nil
}

// fileError says what to do about the errors a caller can act on.
func fileError(err error) error {
	if errors.Is(err, fs.ErrPermission) {
		return fmt.Errorf("%w: the login user may not access it (sudo: true reads and writes as root)", err)
	}
	return err
}

func fileInfoOut(i sessions.FileInfo) fileOut {
	return fileOut{Path: i.Path, Size: i.Size, Mode: octal(i.Mode), Mtime: rfc3339(i.ModTime)}
}

// octal renders a mode's permission bits (with setuid, setgid, sticky) as
// chmod takes them.
func octal(m fs.FileMode) string {
	p := uint32(m.Perm())
	if m&fs.ModeSetuid != 0 {
		p |= 0o4000
	}
	if m&fs.ModeSetgid != 0 {
		p |= 0o2000
	}
	if m&fs.ModeSticky != 0 {
		p |= 0o1000
	}
	return fmt.Sprintf("%04o", p)
}

func (a *app) readFile(ctx context.Context, in readFileIn) (*readFileOut, error) {
	max := in.MaxBytes
	if max == 0 {
		max = sessions.DefaultReadBytes
	}
	if max < 0 || max > sessions.MaxReadBytes || in.Offset < 0 {
		return nil, fmt.Errorf("%w: max_bytes must be 1 to %d and offset not negative", jobs.ErrBadInput, sessions.MaxReadBytes)
	}
	var out *readFileOut
	cmd := fmt.Sprintf("read_file %q offset=%d max_bytes=%d", in.Path, in.Offset, max)
	j, err := a.fileJob(ctx, in.Host, cmd, in.Sudo, func(ctx context.Context, f *sessions.Files) (string, error) {
		read := f.Read
		if in.Sudo {
			read = f.SudoRead
		}
		r, err := read(ctx, in.Path, in.Offset, max)
		if err != nil {
			return "", err
		}
		out = &readFileOut{fileOut: fileInfoOut(r.FileInfo), Offset: r.Offset, Truncated: r.Truncated}
		out.SHA256 = r.SHA256
		data := r.Data
		if r.Truncated {
			// A page that ends inside a UTF-8 character would make a text
			// file look binary: end the page before it.
			data = trimPartialRune(data)
		}
		out.NextOffset = r.Offset + int64(len(data))
		out.Truncated = out.NextOffset < r.Size
		if utf8.Valid(data) && !strings.ContainsRune(string(data), 0) {
			out.Encoding, out.Content = "utf-8", string(data)
		} else {
			out.Encoding, out.Content = "base64", base64.StdEncoding.EncodeToString(r.Data)
			out.NextOffset = r.Offset + int64(len(r.Data))
			out.Truncated = out.NextOffset < r.Size
		}
		return fmt.Sprintf("read %s bytes %d-%d of %d (%s) sha256=%s mode=%s\n",
			r.Path, out.Offset, out.NextOffset, r.Size, out.Encoding, r.SHA256, out.Mode), nil
	})
	if err != nil {
		return nil, err
	}
	out.JobID = j.ID
	return out, nil
}

// trimPartialRune drops an incomplete UTF-8 sequence at the end of b.
func trimPartialRune(b []byte) []byte {
	for i := 1; i <= 3 && i <= len(b); i++ {
		c := b[len(b)-i]
		if c < 0x80 {
			return b // ASCII: nothing cut
		}
		if c >= 0xC0 { // the start of the last sequence
			if !utf8.FullRune(b[len(b)-i:]) {
				return b[:len(b)-i]
			}
			return b
		}
	}
	return b
}

func (o *readFileOut) text() string {
	var b strings.Builder
	fmt.Fprintf(&b, "%s size=%d mode=%s mtime=%s sha256=%s\n", o.Path, o.Size, o.Mode, o.Mtime, o.SHA256)
	if o.Offset > 0 || o.Truncated {
		fmt.Fprintf(&b, "bytes %d-%d", o.Offset, o.NextOffset)
		if o.Truncated {
			fmt.Fprintf(&b, "; more: ssh_read_file offset=%d", o.NextOffset)
		}
		b.WriteString("\n")
	}
	if o.Encoding == "base64" {
		b.WriteString("binary content, base64:\n")
	}
	b.WriteString("\n")
	b.WriteString(o.Content)
	return b.String()
}

func (a *app) writeFile(ctx context.Context, in writeFileIn) (*writeFileOut, error) {
	data := []byte(in.Content)
	switch in.Encoding {
	case "", "utf-8", "text":
	case "base64":
		var err error
		if data, err = base64.StdEncoding.DecodeString(strings.TrimSpace(in.Content)); err != nil {
			return nil, fmt.Errorf("%w: content is not base64: %v", jobs.ErrBadInput, err)
		}
	default:
		return nil, fmt.Errorf("%w: encoding %q: use base64, or leave it out for text", jobs.ErrBadInput, in.Encoding)
	}
	if len(data) > sessions.MaxWriteBytes {
		return nil, fmt.Errorf("%w: content is %d bytes; ssh_write_file takes at most %d: use ssh_upload", jobs.ErrBadInput, len(data), sessions.MaxWriteBytes)
	}
	req := sessions.WriteRequest{Path: in.Path, Data: data, Append: in.Append, MakeDirs: in.MakeDirs, IfSHA256: in.IfSHA256}
	cmd := fmt.Sprintf("write_file %q bytes=%d", in.Path, len(data))
	if in.Mode != "" {
		m, err := strconv.ParseUint(in.Mode, 8, 32)
		if err != nil || m > 0o7777 {
			return nil, fmt.Errorf("%w: mode %q: use octal digits, like 0644", jobs.ErrBadInput, in.Mode)
		}
		mode := fs.FileMode(m)
		req.Mode = &mode
		cmd += fmt.Sprintf(" mode=%04o", m)
	}
	if in.IfSHA256 != "" {
		if len(in.IfSHA256) != 64 {
			return nil, fmt.Errorf("%w: if_sha256 must be 64 hex digits", jobs.ErrBadInput)
		}
		cmd += " if_sha256=" + strings.ToLower(in.IfSHA256)
	}
	for _, flag := range []struct {
		on   bool
		name string
	}{{in.Append, "append"}, {in.MakeDirs, "make_dirs"}} {
		if flag.on {
			cmd += " " + flag.name
		}
	}
	var out *writeFileOut
	j, err := a.fileJob(ctx, in.Host, cmd, in.Sudo, func(ctx context.Context, f *sessions.Files) (string, error) {
		write := f.Write
		if in.Sudo {
			write = f.SudoWrite
		}
		w, err := write(ctx, req)
		if err != nil {
			return "", err
		}
		out = &writeFileOut{fileOut: fileInfoOut(w.FileInfo), Created: w.Created}
		out.SHA256 = w.SHA256
		verb := "wrote"
		if w.Created {
			verb = "created"
		}
		return fmt.Sprintf("%s %s size=%d mode=%s sha256=%s\n", verb, w.Path, w.Size, out.Mode, w.SHA256), nil
	})
	if err != nil {
		return nil, err
	}
	out.JobID = j.ID
	return out, nil
}

func (o *writeFileOut) text() string {
	verb := "wrote"
	if o.Created {
		verb = "created"
	}
	return fmt.Sprintf("%s %s size=%d mode=%s mtime=%s sha256=%s (job %s)\n", verb, o.Path, o.Size, o.Mode, o.Mtime, o.SHA256, o.JobID)
}

func (a *app) listDir(ctx context.Context, in listDirIn) (*listDirOut, error) {
	max := in.MaxEntries
	if max == 0 {
		max = sessions.DefaultListMax
	}
	if max < 0 || max > sessions.MaxListMax {
		return nil, fmt.Errorf("%w: max_entries must be 1 to %d", jobs.ErrBadInput, sessions.MaxListMax)
	}
	cmd := fmt.Sprintf("list_dir %q", in.Path)
	if in.All {
		cmd += " all"
	}
	var out *listDirOut
	j, err := a.fileJob(ctx, in.Host, cmd, false, func(ctx context.Context, f *sessions.Files) (string, error) {
		l, err := f.List(ctx, in.Path, in.All, max)
		if err != nil {
			return "", err
		}
		out = &listDirOut{Path: l.Path, Total: l.Total, Truncated: l.Truncated, Entries: []entryOut{}}
		for _, e := range l.Entries {
			out.Entries = append(out.Entries, entryOut{Name: e.Name, Type: e.Type, Size: e.Size,
				Mode: octal(e.Mode), Mtime: rfc3339(e.ModTime), Target: e.Target})
		}
		return fmt.Sprintf("listed %s: %d entries, %d shown\n", l.Path, l.Total, len(l.Entries)), nil
	})
	if err != nil {
		return nil, err
	}
	out.JobID = j.ID
	return out, nil
}

func (o *listDirOut) text() string {
	var b strings.Builder
	fmt.Fprintf(&b, "%s: %d entries", o.Path, o.Total)
	if o.Truncated {
		fmt.Fprintf(&b, ", first %d shown (raise max_entries)", len(o.Entries))
	}
	b.WriteString("\n")
	for _, e := range o.Entries {
		fmt.Fprintf(&b, "%s %-7s %10d %s %s", e.Mode, e.Type, e.Size, e.Mtime, e.Name)
		if e.Target != "" {
			fmt.Fprintf(&b, " -> %s", e.Target)
		}
		b.WriteString("\n")
	}
	return b.String()
}

type transferIn struct {
	Host      string `json:"host" jsonschema:"as for ssh_run"`
	Local     string `json:"local" jsonschema:"local path, inside the client's roots"`
	Remote    string `json:"remote" jsonschema:"remote path; ~ is the home"`
	Recursive bool   `json:"recursive,omitempty" jsonschema:"copy a folder"`
	MakeDirs  bool   `json:"make_dirs,omitempty" jsonschema:"create missing folders"`
	Mode      string `json:"mode,omitempty" jsonschema:"octal file mode"`
}

type transferFileOut struct {
	Local  string `json:"local"`
	Remote string `json:"remote"`
	Size   int64  `json:"size"`
	SHA256 string `json:"sha256"`
}

type transferOut struct {
	JobID    string            `json:"job_id"`
	Count    int               `json:"count"`
	Bytes    int64             `json:"bytes"`
	Verified string            `json:"verified"` // sha256sum, shasum or sftp (read back)
	Files    []transferFileOut `json:"files"`    // the first 100
	Skipped  []string          `json:"skipped,omitempty"`
}

// maxTransferList bounds the files listed in an answer.
const maxTransferList = 100

func addTransferTools(s *mcp.Server, a *app) {
	for _, up := range []bool{true, false} {
		name, desc, title := "ssh_download", "Copy a remote file or folder to this machine (SFTP, sha256-verified).", "Download"
		if up {
			name, desc, title = "ssh_upload", "Copy a local file or folder to the host (SFTP, atomic, sha256-verified).", "Upload"
		}
		addTool(s, &mcp.Tool{
			Name: name, Description: desc,
			Annotations: &mcp.ToolAnnotations{Title: title, DestructiveHint: &yes, OpenWorldHint: &yes},
		}, func(ctx context.Context, req *mcp.CallToolRequest, in transferIn) (*mcp.CallToolResult, any, error) {
			// Before the roots: a retry that brings a secret must not be
			// answered with another question first.
			if ask, err := a.askFirst(ctx, req, in.Host, false, ""); err != nil || ask != nil {
				return ask, nil, err
			}
			roots, ask, err := a.localRoots(ctx, req)
			if err != nil {
				return nil, nil, err
			}
			if ask {
				return &mcp.CallToolResult{InputRequests: mcp.InputRequestMap{rootsInput: &mcp.ListRootsParams{}}}, nil, nil
			}
			out, err := a.transfer(ctx, roots, in, up)
			if err != nil {
				return nil, nil, err
			}
			return textResult(out.text(up)), out, nil
		})
	}
}

func (a *app) transfer(ctx context.Context, roots []string, in transferIn, up bool) (*transferOut, error) {
	treq := sessions.TransferRequest{Local: in.Local, Remote: in.Remote, Recursive: in.Recursive, MakeDirs: in.MakeDirs, Check: confine(roots)}
	// A local path outside the roots is refused before anything connects.
	if _, err := treq.Check(in.Local); err != nil {
		return nil, err
	}
	cmd := fmt.Sprintf("download %q -> %q", in.Remote, in.Local)
	if up {
		cmd = fmt.Sprintf("upload %q -> %q", in.Local, in.Remote)
	}
	if in.Mode != "" {
		m, err := strconv.ParseUint(in.Mode, 8, 32)
		if err != nil || m > 0o7777 {
			return nil, fmt.Errorf("%w: mode %q: use octal digits, like 0644", jobs.ErrBadInput, in.Mode)
		}
		mode := fs.FileMode(m)
		treq.Mode = &mode
		cmd += fmt.Sprintf(" mode=%04o", m)
	}
	if in.Recursive {
		cmd += " recursive"
	}
	if in.MakeDirs {
		cmd += " make_dirs"
	}
	var res *sessions.TransferResult
	j, err := a.fileJob(ctx, in.Host, cmd, false, func(ctx context.Context, f *sessions.Files) (string, error) {
		var err error
		if up {
			res, err = f.Upload(ctx, treq)
		} else {
			res, err = f.Download(ctx, treq)
		}
		if err != nil {
			if res != nil && len(res.Files) > 0 {
				err = fmt.Errorf("%w (%d files, %d bytes were copied before)", err, len(res.Files), res.Bytes)
			}
			return "", err
		}
		verb := "downloaded"
		if up {
			verb = "uploaded"
		}
		summary := fmt.Sprintf("%s %d files, %d bytes, verified by %s", verb, len(res.Files), res.Bytes, res.Verified)
		if len(res.Files) == 1 {
			summary += " sha256=" + res.Files[0].SHA256
		}
		if len(res.Skipped) > 0 {
			summary += fmt.Sprintf("; %d skipped", len(res.Skipped))
		}
		return summary + "\n", nil
	})
	if err != nil {
		return nil, err
	}
	out := &transferOut{JobID: j.ID, Count: len(res.Files), Bytes: res.Bytes, Verified: res.Verified, Skipped: res.Skipped, Files: []transferFileOut{}}
	for _, f := range res.Files[:min(len(res.Files), maxTransferList)] {
		out.Files = append(out.Files, transferFileOut{Local: f.Local, Remote: f.Remote, Size: f.Size, SHA256: f.SHA256})
	}
	return out, nil
}

func (o *transferOut) text(up bool) string {
	var b strings.Builder
	verb := "downloaded"
	if up {
		verb = "uploaded"
	}
	fmt.Fprintf(&b, "%s %d files, %d bytes, sha256 verified by %s (job %s)\n", verb, o.Count, o.Bytes, o.Verified, o.JobID)
	for _, f := range o.Files {
		from, to := f.Local, f.Remote
		if !up {
			from, to = f.Remote, f.Local
		}
		fmt.Fprintf(&b, "%s -> %s %d sha256=%s\n", from, to, f.Size, f.SHA256)
	}
	if o.Count > len(o.Files) {
		fmt.Fprintf(&b, "... and %d more\n", o.Count-len(o.Files))
	}
	for _, s := range o.Skipped {
		fmt.Fprintf(&b, "skipped (not a file or folder): %s\n", s)
	}
	return b.String()
}
