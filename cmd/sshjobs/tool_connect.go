package main

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"os"
	"strings"

	"github.com/modelcontextprotocol/go-sdk/mcp"

	"github.com/sshjobs/sshjobs/credstore"
	"github.com/sshjobs/sshjobs/jobs"
	"github.com/sshjobs/sshjobs/sessions/sshconfig"
	"github.com/sshjobs/sshjobs/sessions/sshdial"
)

type connectIn struct {
	Host           string `json:"host" jsonschema:"as for ssh_run"`
	Password       string `json:"password,omitempty" jsonschema:"login password"`
	PrivateKeyPath string `json:"private_key_path,omitempty" jsonschema:"local key file"`
	Passphrase     string `json:"passphrase,omitempty" jsonschema:"key passphrase"`
	Save           bool   `json:"save,omitempty" jsonschema:"store them, encrypted"`
	Device         *bool  `json:"device,omitempty" jsonschema:"a network device (router, switch): no shell probe; false undoes it"`
}

type connectOut struct {
	Host               string   `json:"host"`
	HostKeyFingerprint string   `json:"host_key_fingerprint"`
	HostKeyStatus      string   `json:"host_key_status"`
	AuthMethod         string   `json:"auth_method"`
	Remote             string   `json:"remote"`
	Reused             bool     `json:"reused"`
	Saved              []string `json:"saved"`
	Note               string   `json:"note,omitempty"`
}

func addConnectTools(s *mcp.Server, a *app) {
	addTool(s, &mcp.Tool{
		Name:        "ssh_connect",
		Description: "Connect or check a connection: host key, auth, remote system.",
		Annotations: &mcp.ToolAnnotations{IdempotentHint: true},
	}, func(ctx context.Context, req *mcp.CallToolRequest, in connectIn) (*mcp.CallToolResult, *connectOut, error) {
		out, ask, err := a.connect(ctx, req, in)
		if err != nil || ask != nil {
			return ask, nil, err
		}
		return &mcp.CallToolResult{Content: []mcp.Content{&mcp.TextContent{Text: out.text()}}}, out, nil
	})
	addTool(s, &mcp.Tool{
		Name:        "ssh_credentials",
		Description: "List stored credentials (never values) or delete them.",
		Annotations: &mcp.ToolAnnotations{IdempotentHint: true, OpenWorldHint: &no},
	}, a.toolCredentials)
}

// connect opens (or checks) the connection to in.Host with the call's
// secrets as the last resort, and stores them when asked and the dial that
// used them succeeded. When the login needs a password that no source has,
// and the client offers URL elicitation, it returns ask: the result that asks
// the person on a local page (askByURL); the retried call brings the answer.
// No secret is put in the answer or an error.
func (a *app) connect(ctx context.Context, req *mcp.CallToolRequest, in connectIn) (out *connectOut, ask *mcp.CallToolResult, err error) {
	h, err := a.pool.Resolve(ctx, in.Host)
	if err != nil {
		return nil, nil, fmt.Errorf("%w: host %q: %w", jobs.ErrBadInput, in.Host, err)
	}
	if in.Device != nil {
		a.pool.MarkDevice(h, *in.Device)
	}
	given := sshdial.StaticSecrets{}
	if in.Password != "" {
		given[sshdial.SecretPassword] = in.Password
	}
	if in.Passphrase != "" {
		given[sshdial.SecretPassphrase] = in.Passphrase
	}
	if in.PrivateKeyPath != "" {
		// Only inside the folders the file tools may read: the model must
		// not make sshjobs read any file of this machine.
		roots, askRoots, err := a.localRoots(ctx, req)
		if err != nil {
			return nil, nil, err
		}
		if askRoots {
			return nil, &mcp.CallToolResult{InputRequests: mcp.InputRequestMap{rootsInput: &mcp.ListRootsParams{}}}, nil
		}
		path, err := confine(roots)(sshconfig.ExpandHome(in.PrivateKeyPath))
		if err != nil {
			return nil, nil, fmt.Errorf("private_key_path: %w", err)
		}
		pem, err := readKeyFile(path)
		if err != nil {
			return nil, nil, err
		}
		given[sshdial.SecretPrivateKey] = string(pem)
		clear(pem)
	}
	// What to store: the parameters with save, and a secret typed on the
	// page only when the person ticked "remember" (never by save, which
	// the model sets).
	save := map[sshdial.SecretKind]bool{}
	if in.Save {
		for k := range given {
			save[k] = true
		}
	}
	// A retry after the person was asked: their answer is held for the
	// destination (the third source, before the call's own parameters),
	// and saved only when they ticked "remember" and it logged in.
	ans, retried, askErr := a.answerByURL(ctx, req, h.Key())
	if retried && askErr == nil {
		a.held.put(h.Key(), ans.kind, string(ans.secret))
		defer clear(ans.secret)
	}
	info, err := a.pool.Connect(sshdial.WithSecrets(ctx, h.Key(), given), h)
	var authErr *sshdial.AuthError
	answered := func(k sshdial.SecretKind) bool { return retried && ans.kind == k }
	switch {
	case err == nil:
	case retried && askErr != nil:
		return nil, nil, fmt.Errorf("%w (asked the user through the MCP client: %v)", err, askErr)
	case !errors.As(err, &authErr) || req == nil || !supportsURLElicitation(req.Session):
		return nil, nil, err
	case answered(sshdial.SecretPassword) || answered(sshdial.SecretPassphrase) && !authErr.WantsPassword():
		a.held.drop(h.Key(), ans.kind)
		return nil, nil, fmt.Errorf("the %s typed on the page did not log in: %w", ans.kind, err)
	// Asked between two dials, not inside one: the handshake has a
	// deadline of seconds, a person needs longer.
	case authErr.WantsPassphrase() && given[sshdial.SecretPassphrase] == "" && !answered(sshdial.SecretPassphrase):
		ask, err := a.askByURL(ctx, secretWhat(sshdial.SecretPassphrase, h), h.Key(), sshdial.SecretPassphrase, req.Session)
		return nil, ask, err
	case authErr.WantsPassword() && given[sshdial.SecretPassword] == "":
		ask, err := a.askByURL(ctx, secretWhat(sshdial.SecretPassword, h), h.Key(), sshdial.SecretPassword, req.Session)
		return nil, ask, err
	default:
		return nil, nil, err
	}
	if retried && ans.remember {
		// Saved below with the parameters, on the same terms.
		given[ans.kind] = string(ans.secret)
		save[ans.kind] = true
	}
	out = &connectOut{Host: h.Key(), HostKeyFingerprint: info.HostKeyFingerprint, HostKeyStatus: info.HostKeyStatus,
		AuthMethod: info.AuthMethod, Remote: info.Remote, Reused: info.Reused, Saved: []string{}}
	if len(save) == 0 {
		return out, nil, nil
	}
	if info.Reused {
		// The given secrets were not tried: storing them could store a typo.
		out.Note = "not saved: the connection was already open, so the given secrets were not tried; ssh_close the host and connect again to save them"
		return out, nil, nil
	}
	for _, k := range credstore.Kinds {
		v, ok := given[k]
		if !ok || !save[k] {
			continue
		}
		if err := a.client(ctx).creds.Put(ctx, credstore.HostID(h), h.SecretAlias, k, []byte(v)); err != nil {
			if errors.Is(err, credstore.ErrNoMaster) || errors.Is(err, credstore.ErrWrongMaster) || errors.Is(err, credstore.ErrMasterChanged) {
				out.Note = "not saved: " + err.Error()
				return out, nil, nil
			}
			return nil, nil, err
		}
		out.Saved = append(out.Saved, string(k))
	}
	return out, nil, nil
}

// readKeyFile reads a private key file given as a tool parameter, checking
// that it is one: the model may name any file, and its contents must never
// come back in an error.
func readKeyFile(path string) ([]byte, error) {
	st, err := os.Stat(path)
	if err != nil {
		return nil, fmt.Errorf("%w: private_key_path: %w", jobs.ErrBadInput, err)
	}
	if !st.Mode().IsRegular() || st.Size() > maxSecretBytes {
		return nil, fmt.Errorf("%w: private_key_path %s: not a private key file", jobs.ErrBadInput, path)
	}
	pem, err := os.ReadFile(path)
	if err != nil {
		return nil, fmt.Errorf("%w: private_key_path: %w", jobs.ErrBadInput, err)
	}
	if !bytes.Contains(pem, []byte("PRIVATE KEY-----")) {
		clear(pem)
		return nil, fmt.Errorf("%w: private_key_path %s: not a private key in PEM (-----BEGIN ... PRIVATE KEY-----)", jobs.ErrBadInput, path)
	}
	return pem, nil
}

func (o *connectOut) text() string {
	var b strings.Builder
	state := "connected"
	if o.Reused {
		state = "connection open"
	}
	fmt.Fprintf(&b, "%s to %s (%s)\nhost key %s (%s)\nremote: %s\n", state, o.Host, o.AuthMethod, o.HostKeyFingerprint, o.HostKeyStatus, o.Remote)
	if len(o.Saved) > 0 {
		fmt.Fprintf(&b, "saved: %s\n", strings.Join(o.Saved, ", "))
	}
	if o.Note != "" {
		b.WriteString(o.Note + "\n")
	}
	return b.String()
}
