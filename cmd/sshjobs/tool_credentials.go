package main

import (
	"context"
	"fmt"
	"strings"

	"github.com/modelcontextprotocol/go-sdk/mcp"

	"github.com/sshjobs/sshjobs/credstore"
	"github.com/sshjobs/sshjobs/jobs"
	"github.com/sshjobs/sshjobs/sessions/sshdial"
)

type credentialsIn struct {
	Action string `json:"action" jsonschema:"list or delete"`
	Host   string `json:"host,omitempty" jsonschema:"for delete"`
	Kind   string `json:"kind,omitempty" jsonschema:"delete only this kind"`
}

type credentialRow struct {
	Host      string   `json:"host"`
	User      string   `json:"user"`
	Alias     string   `json:"alias,omitempty"`
	Kinds     []string `json:"kinds"`
	UpdatedAt string   `json:"updated_at"`
}

type credentialsOut struct {
	Credentials []credentialRow `json:"credentials,omitempty"`
	Deleted     *int            `json:"deleted,omitempty"`
	Enabled     bool            `json:"store_enabled"`
	action      string
	host        string
}

// credentials lists (without values) or deletes stored secrets. Neither needs
// the master password.
func (a *app) credentials(ctx context.Context, in credentialsIn) (credentialsOut, error) {
	creds := a.client(ctx).creds
	out := credentialsOut{Enabled: creds.Enabled(), action: in.Action, host: in.Host}
	switch in.Action {
	case "list":
		rows, err := creds.List(ctx)
		if err != nil {
			return out, err
		}
		byHost := map[string]int{}
		for _, r := range rows {
			i, ok := byHost[r.Host]
			if !ok {
				user, _, _ := strings.Cut(r.Host, "@")
				out.Credentials = append(out.Credentials, credentialRow{Host: r.Host, User: user, Alias: r.Alias})
				i = len(out.Credentials) - 1
				byHost[r.Host] = i
			}
			c := &out.Credentials[i]
			c.Kinds = append(c.Kinds, string(r.Kind))
			if at := rfc3339(r.UpdatedAt); at > c.UpdatedAt {
				c.UpdatedAt = at
			}
			if c.Alias == "" {
				c.Alias = r.Alias
			}
		}
		return out, nil
	case "delete":
		if in.Host == "" {
			return out, fmt.Errorf("%w: delete needs host", jobs.ErrBadInput)
		}
		kind := sshdial.SecretKind(in.Kind)
		if kind != "" && !credstore.ValidKind(kind) {
			return out, fmt.Errorf("%w: kind %q: want password, private_key, passphrase, sudo or enable", jobs.ErrBadInput, in.Kind)
		}
		n, err := creds.Delete(ctx, in.Host, kind)
		if err != nil {
			return out, err
		}
		if n == 0 {
			// Named another way than it was saved (web1 for root@10.0.0.5:22):
			// try the destination it resolves to.
			if h, err := a.pool.Resolve(ctx, in.Host); err == nil {
				if n, err = creds.Delete(ctx, credstore.HostID(h), kind); err != nil {
					return out, err
				}
			}
		}
		out.Deleted = &n
		return out, nil
	}
	return out, fmt.Errorf("%w: action %q: want list or delete", jobs.ErrBadInput, in.Action)
}

func (o credentialsOut) text() string {
	var b strings.Builder
	if o.action == "delete" {
		n := 0
		if o.Deleted != nil {
			n = *o.Deleted
		}
		fmt.Fprintf(&b, "deleted %d secret(s) of %s\n", n, o.host)
		return b.String()
	}
	if len(o.Credentials) == 0 {
		b.WriteString("no stored credentials\n")
	} else {
		fmt.Fprintf(&b, "%-32s %-16s %-40s %s\n", "HOST", "ALIAS", "KINDS", "UPDATED")
		for _, c := range o.Credentials {
			fmt.Fprintf(&b, "%-32s %-16s %-40s %s\n", c.Host, c.Alias, strings.Join(c.Kinds, ","), c.UpdatedAt)
		}
	}
	if !o.Enabled {
		fmt.Fprintf(&b, "(the store is not enabled in this process: set %s to use and save secrets)\n", credstore.EnvMaster)
	}
	return b.String()
}

func (a *app) toolCredentials(ctx context.Context, _ *mcp.CallToolRequest, in credentialsIn) (*mcp.CallToolResult, credentialsOut, error) {
	out, err := a.credentials(ctx, in)
	if err != nil {
		return nil, credentialsOut{}, err
	}
	return &mcp.CallToolResult{Content: []mcp.Content{&mcp.TextContent{Text: out.text()}}}, out, nil
}
