// rcu-stress: torture tester and benchmark for swift-rcu, with liburcu as the
// reference. Contract: shared/design/stress-contract.md; the command line is
// Commands/, the workloads Workloads/, what they share Harness/.

// Descriptors 0-2 closed at start get /dev/null (read-only) first, so no
// later descriptor lands there; then the signal handlers and the self-pipe.
StandardOutput.reserveClosedDescriptors()
Interrupt.install()
if let descriptor = isolatedChildDescriptor { StandardOutput.redirect(to: descriptor) }
runCommandLine(Array(CommandLine.arguments.dropFirst()))
