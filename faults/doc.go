// Package faults holds MetaStore's in-process fault suites, all in its
// tests: members started with node.Start on pebble's crashable in-memory
// filesystem lose power at random points under load — and in the middle
// of a defragmentation, a physical compaction, a raft log truncation or a
// snapshot install — and are started again on what their disks kept
// (powerloss_test.go); members on a filesystem that fails writes, syncs
// and reads show what a failing disk does to them (diskfault_test.go).
//
// `go test ./faults/` runs the short suites; METASTORE_FAULTS=long (make
// test-faults) the long ones; METASTORE_FAULTS_SEED=<seed> reruns a seed a
// failure printed. docs/reliability.md records what they check and found.
package faults
