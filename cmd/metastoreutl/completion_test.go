package main

import (
	"strings"
	"testing"
)

// Each shell's script is cobra's for this tool: it completes by calling
// `metastoreutl __complete`, which answers from the commands and flags
// themselves.
func TestCompletionScripts(t *testing.T) {
	for shell, marker := range map[string]string{
		"bash":       "__start_metastoreutl()",
		"zsh":        "#compdef metastoreutl",
		"fish":       "complete -c metastoreutl ",
		"powershell": "Register-ArgumentCompleter -CommandName 'metastoreutl'",
	} {
		out, e, code := runCLI("completion", shell)
		if code != 0 || e != "" || !strings.Contains(out, marker) || !strings.Contains(out, "__complete") {
			t.Errorf("completion %s: exit %d, stderr %q, script without %q or __complete", shell, code, e, marker)
		}
	}
	for _, c := range []struct {
		args []string
		want string // completions, then cobra's directive
	}{
		{[]string{"snapshot", ""}, "export\nrestore\nstatus\n:4\n"},
		{[]string{"migrate", ""}, "from-etcd\n:4\n"},
		{[]string{"completion", ""}, "bash\nzsh\nfish\npowershell\n:4\n"},
		{[]string{"-w", ""}, "fields\njson\nprotobuf\nsimple\ntable\n:0\n"},
		{[]string{"snapshot", "restore", "--data-dir", ""}, ":16\n"}, // directories
		{[]string{"defrag", "--data-dir", ""}, ":16\n"},
		{[]string{"snapshot", "restore", "x", "--bump"}, "--bump-revision\n:4\n"},
		{[]string{"hashkv", "x", "--r"}, "--rev\n:4\n"},
	} {
		out, _, code := runCLI(append([]string{"__completeNoDesc"}, c.args...)...)
		if code != 0 || out != c.want {
			t.Errorf("complete %q: exit %d, %q; want %q", c.args, code, out, c.want)
		}
	}
	if out, _, _ := runCLI("__completeNoDesc", ""); !strings.Contains(out, "\nhashkv\n") || !strings.Contains(out, "\nsnapshot\n") {
		t.Errorf("commands completed: %q", out)
	}
}
