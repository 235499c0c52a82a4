// Creates a sandbox from the template and runs the agent in it twice, the
// second time continuing the conversation: `E2B_API_KEY=... ANTHROPIC_API_KEY=...
// npx tsx example.ts`.
import { CommandExitError, Sandbox } from 'e2b'

// Runs one agent session through the daemon and returns its exit status.
// `supervisor submit` prints the CLI's stream-json lines as they arrive and
// exits with the CLI's status.
async function submit(sandbox: Sandbox, claudeArgs: string): Promise<number> {
  try {
    const result = await sandbox.commands.run(
      `supervisor submit -- claude ${claudeArgs} --output-format stream-json --verbose`,
      {
        cwd: '/home/user/workspace',
        timeoutMs: 30 * 60 * 1000,
        onStdout: (data) => {
          process.stdout.write(data)
        },
        onStderr: (data) => {
          process.stderr.write(data)
        },
      },
    )
    return result.exitCode
  } catch (err) {
    // commands.run throws on a non-zero exit status.
    if (err instanceof CommandExitError) return err.exitCode
    throw err
  }
}

async function main() {
  // Variables given here reach `supervisor submit` (and, through its
  // allow-list, the agent), never the daemon started at build time.
  const sandbox = await Sandbox.create('agent-supervisor', {
    envs: {
      ANTHROPIC_API_KEY: process.env.ANTHROPIC_API_KEY ?? '',
      // Sync to the app instead of the local mirror:
      // SUPERVISOR_SYNC: 'https://app.example.com/sync/session-42',
      // SUPERVISOR_SYNC_TOKEN: process.env.SYNC_TOKEN ?? '',
    },
  })
  try {
    const first = await submit(sandbox, `-p 'write a hello world in Go'`)
    console.error(`first run exited ${first}`)
    // Same workspace and manifest: only what this run changes is synced.
    const second = await submit(sandbox, `--continue -p 'add a test for it'`)
    console.error(`second run exited ${second}`)
  } finally {
    await sandbox.kill()
  }
}

main().catch((err) => {
  console.error(err)
  process.exit(1)
})
