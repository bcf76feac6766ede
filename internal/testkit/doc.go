// Package testkit is the home of the helpers that only tests use; nothing
// under it ships in a binary. Its packages:
//
//   - e2etest: shared set-up for tests that run the real binaries (e2e/,
//     reliability/)
//   - faultproxy: a fault-injecting proxy between the binaries and the emulator
//   - ledgertest: a run ledger in moto, and runs taken to any status
//   - mototest: a moto server per test, torn down after it
//   - prooftest: distinct moto identities, and requests signed by them
//   - testutil: small helpers shared by tests
package testkit
