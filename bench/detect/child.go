package main

import (
	"encoding/json"
	"flag"
	"fmt"
	"os"
	"path/filepath"
	"time"
)

// agentChild plays a Claude Code session under the supervisor: for each
// file it prints the Write tool_use, writes the stamped file, then prints
// the successful tool_result, as the CLI does around a real Write.
func agentChild(args []string) int {
	fs := flag.NewFlagSet("agent-child", flag.ContinueOnError)
	dir := fs.String("dir", "", "directory to write the files in")
	n := fs.Int("n", 100, "files to write")
	interval := fs.Duration("interval", 50*time.Millisecond, "pause between files")
	if err := fs.Parse(args); err != nil || *dir == "" {
		return 2
	}
	emit := func(v any) {
		line, _ := json.Marshal(v)
		_, _ = os.Stdout.Write(append(line, '\n'))
	}
	emit(map[string]any{"type": "system", "subtype": "init", "cwd": *dir,
		"session_id": "bench", "model": "bench"})

	for i := range *n {
		id := fmt.Sprintf("toolu_bench_%d", i)
		p := filepath.Join(*dir, fmt.Sprintf("f%d", i))
		emit(map[string]any{"type": "assistant", "session_id": "bench", "message": map[string]any{
			"id": fmt.Sprintf("msg_bench_%d", i), "role": "assistant",
			"content": []any{map[string]any{"type": "tool_use", "id": id, "name": "Write",
				"input": map[string]any{"file_path": p, "content": "stamp"}}},
		}})
		if err := writeStamped(p); err != nil {
			fmt.Fprintln(os.Stderr, err)
			return 1
		}
		emit(map[string]any{"type": "user", "session_id": "bench", "message": map[string]any{
			"role": "user",
			"content": []any{map[string]any{"type": "tool_result", "tool_use_id": id,
				"content": "File created successfully"}},
		}, "tool_use_result": map[string]any{"filePath": p}})
		time.Sleep(*interval)
	}
	emit(map[string]any{"type": "result", "subtype": "success", "is_error": false,
		"num_turns": *n, "session_id": "bench"})
	return 0
}
