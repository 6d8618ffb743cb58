// Package sshdial opens SSH connections to a resolved sshconfig.Host: the
// security boundary of sshjobs. It dials directly, through ProxyJump hops or a
// ProxyCommand (whose environment holds no secrets), verifies the host key
// against known_hosts (certificates against @cert-authority lines, accept-new
// by default, a changed or revoked key always refused), and authenticates in
// OpenSSH's order (agent, key files, password, keyboard-interactive) with
// secrets from a Secrets source, never logged and never typed where sshjobs
// did not ask. Every failure comes back typed (AuthError, HostKeyError) with
// what was tried and what to do next.
package sshdial
