// The E2B template (build system 2.0, TypeScript SDK `e2b`).
//
// Start command: `supervisor serve` runs once at the end of the build and is
// snapshotted running, so every sandbox starts with the daemon idle and
// ready for runs. Ready command: `supervisor health` exits 0 once /readyz
// says the control API answers; E2B runs it in a loop until it does, then
// takes the snapshot.
import { Template } from 'e2b'

export const template = Template()
  .fromDockerfile('e2b.Dockerfile')
  .setStartCmd('supervisor serve', 'supervisor health')
