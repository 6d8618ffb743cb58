package main

import (
	"context"
	"errors"
	"fmt"
	"io/fs"
	"net/url"
	"os"
	"path/filepath"
	"strings"

	"github.com/modelcontextprotocol/go-sdk/mcp"

	"github.com/sshjobs/sshjobs/jobs"
	"github.com/sshjobs/sshjobs/sessions"
)

// Where ssh_upload may read and ssh_download may write on this machine: in
// the client's MCP roots when it lists any, else in the working directory
// and the --allow-local folders of the front it runs (the daemon: of the
// `sshjobs serve` the MCP client started). A path is judged after its
// symlinks are resolved, so neither `..` nor a symlink leads out.

// rootsInput is the id of our roots request in a multi round-trip call.
const rootsInput = "roots"

// localRoots returns the allowed folders, symlinks resolved, for a tool
// call. A client that declares roots is asked for them by the call's
// result (multi round-trip, SEP-2322: a server may not send roots/list
// while serving a request at protocol 2026-07-28; the SDK fulfils it itself
// for older clients): ask is then true, and the call is made again with
// the answer.
func (a *app) localRoots(ctx context.Context, req *mcp.CallToolRequest) (roots []string, ask bool, err error) {
	if ss := req.Session; ss != nil {
		if p := ss.InitializeParams(); p != nil && p.Capabilities != nil && p.Capabilities.RootsV2 != nil {
			resp, ok := req.Params.InputResponses[rootsInput]
			if !ok {
				return nil, true, nil
			}
			res, ok := resp.(*mcp.ListRootsResult)
			if !ok {
				return nil, false, fmt.Errorf("the client answered the roots request with %T", resp)
			}
			for _, r := range res.Roots {
				u, err := url.Parse(r.URI)
				if err == nil && u.Scheme == "file" && u.Path != "" {
					roots = append(roots, filepath.FromSlash(u.Path))
				}
			}
		}
	}
	if len(roots) == 0 {
		// No roots declared (or an empty list): the front's own defaults.
		cl := a.client(ctx)
		cwd := cl.cwd
		if cwd == "" {
			if cwd, err = os.Getwd(); err != nil {
				return nil, false, err
			}
		}
		roots = append([]string{cwd}, cl.allowLocal...)
	}
	var real []string
	for _, r := range roots {
		if p, err := filepath.EvalSymlinks(r); err == nil {
			real = append(real, p)
		}
	}
	if len(real) == 0 {
		return nil, false, fmt.Errorf("%w: no local folder is allowed (roots %v do not exist)", jobs.ErrBadInput, roots)
	}
	return real, false, nil
}

// confine returns the check for local paths inside roots. A relative path
// is taken from the first root.
func confine(roots []string) sessions.LocalCheck {
	return func(p string) (string, error) {
		if p == "" {
			return "", fmt.Errorf("%w: local path is empty", jobs.ErrBadInput)
		}
		if !filepath.IsAbs(p) {
			p = filepath.Join(roots[0], p)
		}
		real, err := resolveExisting(filepath.Clean(p))
		if err != nil {
			return "", fmt.Errorf("local path %s: %w", p, err)
		}
		for _, r := range roots {
			if rel, err := filepath.Rel(r, real); err == nil && rel != ".." && !strings.HasPrefix(rel, ".."+string(filepath.Separator)) {
				return real, nil
			}
		}
		return "", fmt.Errorf("%w: local path %s (%s) is outside the allowed folders %s: use a path inside them, or start sshjobs with -allow-local",
			jobs.ErrBadInput, p, real, strings.Join(roots, ", "))
	}
}

// resolveExisting resolves the symlinks of p's longest existing prefix and
// appends the rest, which cannot hold a symlink since it does not exist.
func resolveExisting(p string) (string, error) {
	var rest []string
	for cur := p; ; cur = filepath.Dir(cur) {
		real, err := filepath.EvalSymlinks(cur)
		if err == nil {
			return filepath.Join(append([]string{real}, rest...)...), nil
		}
		if !errors.Is(err, fs.ErrNotExist) || filepath.Dir(cur) == cur {
			return "", err
		}
		rest = append([]string{filepath.Base(cur)}, rest...)
	}
}
