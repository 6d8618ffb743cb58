// Package faults holds sshjobs' fault and load tests: the real engine and the
// built binary against a real OpenSSH sshd while the link to it is cut
// without a FIN (network namespaces of the test's own), its sshd child is
// killed, sshjobs itself is SIGKILLed during heavy output, its database's
// disk fills up or turns read-only, and 50 sessions carry mixed traffic.
//
// The package has no code besides its tests. The tests need root for
// namespaces and mounts, and skip loudly without it unless CI asks for them
// (SSHJOBS_REQUIRE_NETNS=1, set by .ci/run when `unshare -n true` works).
// SSHJOBS_FAULTS_LONG=1 runs the long variants (a 10 minute load run).
package faults
