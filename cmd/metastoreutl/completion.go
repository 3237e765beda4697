package main

import (
	"fmt"

	"github.com/spf13/cobra"
)

// completionCommand is etcdutl's: cobra's scripts for each shell, which
// complete by asking `metastoreutl __complete ...` — so they complete
// what this binary's commands and flags are (commands, flags, -w's
// formats, directories for --data-dir and --wal-dir), never a stale list.
func completionCommand() *command {
	return &command{
		path:  "completion",
		use:   "completion [bash|zsh|fish|powershell]",
		short: "Generate completion script",
		long: `To load completions:

Bash:

  $ source <(metastoreutl completion bash)

  # To load completions for each session, execute once:
  # Linux:
  $ metastoreutl completion bash > /etc/bash_completion.d/metastoreutl
  # macOS:
  $ metastoreutl completion bash > /usr/local/etc/bash_completion.d/metastoreutl

Zsh:

  # If shell completion is not already enabled in your environment,
  # you will need to enable it.  You can execute the following once:

  $ echo "autoload -U compinit; compinit" >> ~/.zshrc

  # To load completions for each session, execute once:
  $ metastoreutl completion zsh > "${fpath[1]}/_metastoreutl"

  # You will need to start a new shell for this setup to take effect.

fish:

  $ metastoreutl completion fish | source

  # To load completions for each session, execute once:
  $ metastoreutl completion fish > ~/.config/fish/completions/metastoreutl.fish

PowerShell:

  PS> metastoreutl completion powershell | Out-String | Invoke-Expression

  # To load completions for every new session, run:
  PS> metastoreutl completion powershell > metastoreutl.ps1
  # and source this file from your PowerShell profile.
`,
		setup: func(cc *cobra.Command) {
			cc.DisableFlagsInUseLine = true
			cc.ValidArgs = []string{"bash", "zsh", "fish", "powershell"}
			cc.Args = cobra.MatchAll(cobra.ExactArgs(1), cobra.OnlyValidArgs)
		},
		run: func(c *cli, args []string) int {
			root := c.cc.Root()
			var err error
			switch args[0] {
			case "bash":
				err = root.GenBashCompletion(c.stdout)
			case "zsh":
				err = root.GenZshCompletion(c.stdout)
			case "fish":
				err = root.GenFishCompletion(c.stdout, true)
			case "powershell":
				err = root.GenPowerShellCompletionWithDesc(c.stdout)
			}
			if err != nil {
				return c.fail(exitError, fmt.Errorf("write the %s completion script: %w", args[0], err))
			}
			return exitSuccess
		},
	}
}
