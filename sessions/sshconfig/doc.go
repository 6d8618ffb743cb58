// Package sshconfig turns a target (alias, host, user@host:port) into a Host:
// everything that decides where and as whom a command lands, resolved the way
// `ssh HOST` would (through `ssh -G` where OpenSSH is installed, else a
// built-in ssh_config reader), with the OVRD_{alias}_* environment
// overrides. A Host is also the destination stored on a job row, and its Key
// names it. Nothing here touches the network.
package sshconfig
