package main

import (
	"context"
	"errors"
	"fmt"

	"github.com/modelcontextprotocol/go-sdk/mcp"

	"github.com/sshjobs/sshjobs/credstore"
	"github.com/sshjobs/sshjobs/sessions"
	"github.com/sshjobs/sshjobs/sessions/sshconfig"
	"github.com/sshjobs/sshjobs/sessions/sshdial"
)

// askFirst runs before ssh_run and the file tools submit a job on target,
// when the client can be asked for a secret (URL elicitation). It makes sure
// that the job will not stop for a secret that no source has and that a
// person can type: the login password or a key's passphrase (it dials the
// host when no connection is open, as the job would) and, with sudo, the
// sudo password (sudo is asked, with -n, whether it needs one). When one is
// missing it returns ask: the result that asks for it on a one-time page
// (askByURL). The retried call brings the answer, which is held for the
// destination (heldSecrets) and stored only when the person ticked
// "remember" and it worked; then the call goes on.
//
// For ssh_run (session is the job's session; "" for the file tools, which
// do not type into a device's CLI) on a network device it also makes sure
// of the enable secret (askEnable).
//
// A client without URL elicitation is never asked (nil, nil): the job then
// ends with the error that names the sources that would work. Any other
// failure here is left to the job too, which records it.
func (a *app) askFirst(ctx context.Context, req *mcp.CallToolRequest, target string, sudo bool, session string) (ask *mcp.CallToolResult, err error) {
	if req == nil || !supportsURLElicitation(req.Session) {
		return nil, nil
	}
	h, err := a.pool.Resolve(ctx, target)
	if err != nil {
		return nil, nil
	}
	ans, retried, askErr := a.answerByURL(ctx, req, h.Key())
	if retried && askErr != nil {
		err := fmt.Errorf("%s was not given: %w; to give it without being asked, %s", secretWhat(ans.kind, h), askErr, secretAdvice(ans.kind, h))
		if ans.kind == sshdial.SecretEnable {
			// A device's commands run in user mode without it: the person
			// is not asked again meanwhile.
			a.held.decline(h.Key(), sshdial.SecretEnable)
			err = fmt.Errorf("%w. The command was not run; for %v, calls run commands in user mode without asking", err, heldTTL)
		}
		return nil, err
	}
	if retried {
		a.held.put(h.Key(), ans.kind, string(ans.secret))
		defer clear(ans.secret)
	}
	answered := func(k sshdial.SecretKind) bool { return retried && ans.kind == k }

	if err := a.pool.Ready(ctx, h); err != nil {
		var authErr *sshdial.AuthError
		if !errors.As(err, &authErr) {
			return nil, nil
		}
		switch {
		case answered(sshdial.SecretPassword) || answered(sshdial.SecretPassphrase) && !authErr.WantsPassword():
			// What the person typed did not log in: forget it, and say so
			// now rather than in a job.
			a.held.drop(h.Key(), ans.kind)
			return nil, fmt.Errorf("the %s typed on the page did not log in: %w", ans.kind, err)
		case authErr.WantsPassphrase() && !answered(sshdial.SecretPassphrase):
			return a.askByURL(ctx, secretWhat(sshdial.SecretPassphrase, h), h.Key(), sshdial.SecretPassphrase, req.Session)
		case authErr.WantsPassword():
			return a.askByURL(ctx, secretWhat(sshdial.SecretPassword, h), h.Key(), sshdial.SecretPassword, req.Session)
		}
		return nil, nil
	}
	if answered(sshdial.SecretPassword) || answered(sshdial.SecretPassphrase) {
		a.remember(ctx, h, ans)
	}
	if session != "" && !sudo {
		return a.askEnable(ctx, req, h, session, ans, answered(sshdial.SecretEnable))
	}
	if !sudo {
		return nil, nil
	}
	if answered(sshdial.SecretSudo) {
		switch st, err := a.pool.CheckSudo(ctx, h, string(ans.secret)); {
		case err != nil:
			return nil, nil
		case st == sessions.SudoRefused:
			a.held.drop(h.Key(), sshdial.SecretSudo)
			return nil, fmt.Errorf("sudo on %s refused the password typed on the page: call again to type it again", credstore.HostID(h))
		case st == sessions.SudoOK:
			a.remember(ctx, h, ans)
		}
		return nil, nil
	}
	// The password a sudo job would type: the sudo secret, else the login
	// password (sessions.jobRun.sudoPassword).
	for _, k := range []sshdial.SecretKind{sshdial.SecretSudo, sshdial.SecretPassword} {
		if _, ok, err := sshdial.SecretsIn(ctx, a.secrets).Secret(ctx, h, k); err != nil || ok {
			return nil, nil
		}
	}
	if st, err := a.pool.CheckSudo(ctx, h, ""); err != nil || st != sessions.SudoNeedsPassword {
		return nil, nil
	}
	return a.askByURL(ctx, secretWhat(sshdial.SecretSudo, h), h.Key(), sshdial.SecretSudo, req.Session)
}

// askEnable is askFirst's part for a command on a network device: when its
// session is in user mode, enable asks for a secret and no source has one
// (nor did the person decline it lately), it asks for the enable secret.
// An answer is tried on the device (CheckEnable) before the job: a refused
// one is dropped, one that got in is stored when "remember" was ticked.
func (a *app) askEnable(ctx context.Context, req *mcp.CallToolRequest, h *sshconfig.Host, session string, ans pageAnswer, answered bool) (*mcp.CallToolResult, error) {
	if answered {
		switch st, err := a.pool.CheckEnable(ctx, h, session, string(ans.secret)); {
		case err != nil:
			return nil, nil
		case st == sessions.EnableRefused:
			a.held.drop(h.Key(), sshdial.SecretEnable)
			return nil, fmt.Errorf("the network device %s refused the enable secret typed on the page; the command was not run: call again to type it again", credstore.HostID(h))
		case st == sessions.EnableOK:
			a.remember(ctx, h, ans)
		}
		return nil, nil
	}
	if !a.pool.IsDevice(h) || a.held.declined(h.Key(), sshdial.SecretEnable) {
		return nil, nil
	}
	if _, ok, err := sshdial.SecretsIn(ctx, a.secrets).Secret(ctx, h, sshdial.SecretEnable); err != nil || ok {
		return nil, nil
	}
	if st, err := a.pool.CheckEnable(ctx, h, session, ""); err != nil || st != sessions.EnableNeedsSecret {
		return nil, nil
	}
	return a.askByURL(ctx, secretWhat(sshdial.SecretEnable, h), h.Key(), sshdial.SecretEnable, req.Session)
}

// remember stores ans when the person ticked "remember" and it worked. A
// store that cannot take it (wrong master password) is logged: the call
// itself succeeded.
func (a *app) remember(ctx context.Context, h *sshconfig.Host, ans pageAnswer) {
	if !ans.remember {
		return
	}
	if err := a.client(ctx).creds.Put(ctx, credstore.HostID(h), h.SecretAlias, ans.kind, ans.secret); err != nil {
		a.log.Warn("a secret typed on the elicitation page was not saved", "host", h.Key(), "kind", string(ans.kind), "err", err)
	}
}

// secretWhat describes the secret of kind for h on the page and in errors.
func secretWhat(kind sshdial.SecretKind, h *sshconfig.Host) string {
	switch kind {
	case sshdial.SecretPassphrase:
		return "the passphrase of the private key for " + credstore.HostID(h)
	case sshdial.SecretSudo:
		return "the sudo password on " + credstore.HostID(h)
	case sshdial.SecretEnable:
		return "the enable secret of the network device " + credstore.HostID(h)
	}
	return "the login password of " + credstore.HostID(h)
}

// secretAdvice names the sources that would give the secret of kind for h
// without asking: the OVRD_ variable (only when the alias's variables go to
// this destination) and the credential store's command.
func secretAdvice(kind sshdial.SecretKind, h *sshconfig.Host) string {
	suffix, flag := "PASS", ""
	switch kind {
	case sshdial.SecretPassphrase:
		suffix, flag = "KEY_PASS", " --kind passphrase"
	case sshdial.SecretSudo:
		suffix, flag = "SUDO_PASS", " --kind sudo"
	case sshdial.SecretEnable:
		suffix, flag = "ENABLE_PASS", " --kind enable"
	}
	cmd := fmt.Sprintf("`sshjobs secret set %s%s`", sessions.StoreTarget(h), flag)
	if h.SecretAlias == "" {
		return "save it with " + cmd
	}
	return fmt.Sprintf("set %s%s in sshjobs' environment, or save it with %s", sshconfig.EnvName(h.SecretAlias), suffix, cmd)
}
