// Package sessions runs jobs over SSH: a Pool holds one connection per
// destination (sshconfig.Host.Key) and, on each, the named persistent shells
// (sessions) that run jobs one at a time; its Executor implements
// jobs.Executor: it runs shell jobs through the marker protocol, answers sudo
// with a nonce prompt, and launches, follows and re-attaches detached jobs.
//
// Where a target leads is sshconfig's business (no network); how a connection
// is opened and trusted (auth, known_hosts, secrets) is sshdial's.
package sessions
