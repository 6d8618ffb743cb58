// Package sessions is everything sshjobs does over SSH: it resolves a host the
// way `ssh HOST` would (ssh_config, through `ssh -G` where OpenSSH is
// installed), authenticates in OpenSSH's order (agent, key files, password,
// keyboard-interactive) with secrets that never reach a log, verifies host keys
// against known_hosts (accept-new by default, a changed key always refused),
// pools connections, and drives the persistent shells that run jobs. It
// implements jobs.Executor.
package sessions
