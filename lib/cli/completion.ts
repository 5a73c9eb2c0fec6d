// `scan-backends completion bash|zsh|fish`: a completion script made from the commands'
// own flag tables, so a new flag completes without anyone editing a script.
import { UsageError } from './exit-codes.js';
import type { FlagSpec, FlagTable } from './flags.js';
import { SCAN_FLAGS } from './scan-command.js';

export const COMPLETION_USAGE = `Usage: scan-backends completion bash|zsh|fish

Prints a shell completion script. Install it with, for example:
  scan-backends completion bash > ~/.local/share/bash-completion/completions/scan-backends
  scan-backends completion zsh  > "\${fpath[1]}/_scan-backends"
  scan-backends completion fish > ~/.config/fish/completions/scan-backends.fish
`;

/** Each command's flag table, the one its parser reads (help and completion take none). */
async function commandFlags(): Promise<Record<string, FlagTable>> {
  const [
    { PROBE_COMMAND_FLAGS },
    { RESOLVE_FLAGS },
    { WATCH_FLAGS },
    { SERVE_FLAGS },
    { DOCTOR_FLAGS },
    { DEMO_FLAGS },
    { PLAN_FLAGS },
    { RUN_FLAGS },
    { ANNOUNCE_FLAGS },
  ] = await Promise.all([
    import('./probe-command.js'),
    import('./resolve-command.js'),
    import('./watch-command.js'),
    import('./serve-command.js'),
    import('./doctor-command.js'),
    import('./demo.js'),
    import('./plan-command.js'),
    import('./run-command.js'),
    import('./announce-command.js'),
  ]);
  return {
    scan: SCAN_FLAGS,
    probe: PROBE_COMMAND_FLAGS,
    resolve: RESOLVE_FLAGS,
    watch: WATCH_FLAGS,
    serve: SERVE_FLAGS,
    run: RUN_FLAGS,
    doctor: DOCTOR_FLAGS,
    demo: DEMO_FLAGS,
    plan: PLAN_FLAGS,
    announce: ANNOUNCE_FLAGS,
    help: {},
    completion: {},
  };
}

/** A flag's spellings: "--ports" and "-p". */
function spellings(name: string, spec: FlagSpec): string[] {
  return [`--${name}`, ...(spec.short ? [`-${spec.short}`] : [])];
}

function bash(tables: Record<string, FlagTable>): string {
  const commands = Object.keys(tables);
  const flagWords = Object.entries(tables)
    .map(([cmd, table]) => {
      const words =
        cmd === 'help'
          ? commands
          : cmd === 'completion'
            ? ['bash', 'zsh', 'fish']
            : Object.entries(table).flatMap(([name, spec]) => spellings(name, spec));
      return `    ${cmd}) words="${words.join(' ')}" ;;`;
    })
    .join('\n');
  // The value after a flag: its words, a comma list's next word, or a file name.
  const valueCases = Object.entries(tables)
    .flatMap(([cmd, table]) =>
      Object.entries(table).flatMap(([name, spec]) => {
        const action = spec.choices
          ? `words="${spec.choices.join(' ')}"`
          : spec.list
            ? `list="${spec.list.join(' ')}"`
            : spec.file
              ? 'files=1'
              : spec.type === 'string'
                ? 'return' // a free value: nothing to offer
                : undefined;
        if (action === undefined) return [];
        return [
          `    ${spellings(name, spec)
            .map((f) => `"${cmd} ${f}"`)
            .join('|')}) ${action} ;;`,
        ];
      }),
    )
    .join('\n');
  return `# bash completion for scan-backends (scan-backends completion bash)
_scan_backends() {
  local cur=\${COMP_WORDS[COMP_CWORD]} prev=\${COMP_WORDS[COMP_CWORD-1]} words="" list="" files=""
  COMPREPLY=()
  if [ "$COMP_CWORD" -eq 1 ]; then
    words="${commands.join(' ')} --help --version"
  else
    case "\${COMP_WORDS[1]} $prev" in
${valueCases}
    *)
      case "\${COMP_WORDS[1]}" in
${flagWords}
      esac ;;
    esac
  fi
  if [ -n "$files" ]; then
    COMPREPLY=($(compgen -f -- "$cur"))
  elif [ -n "$list" ]; then
    local done=""
    case "$cur" in *,*) done="\${cur%,*}," ;; esac
    COMPREPLY=($(compgen -P "$done" -W "$list" -- "\${cur##*,}"))
  else
    COMPREPLY=($(compgen -W "$words" -- "$cur"))
  fi
}
complete -F _scan_backends scan-backends
`;
}

function fish(tables: Record<string, FlagTable>): string {
  const lines = [
    '# fish completion for scan-backends (scan-backends completion fish)',
    `complete -c scan-backends -f -n __fish_use_subcommand -a '${Object.keys(tables).join(' ')}'`,
  ];
  for (const [cmd, table] of Object.entries(tables)) {
    for (const [name, spec] of Object.entries(table)) {
      const option = `-l ${name}${spec.short ? ` -s ${spec.short}` : ''}`;
      const value = spec.file
        ? ' -r -F'
        : spec.choices || spec.list
          ? ` -x -a '${(spec.choices ?? spec.list ?? []).join(' ')}'`
          : spec.type === 'string'
            ? ' -x'
            : '';
      lines.push(`complete -c scan-backends -f -n '__fish_seen_subcommand_from ${cmd}' ${option}${value}`);
    }
  }
  return `${lines.join('\n')}\n`;
}

export async function runCompletionCommand(argv: string[]): Promise<number> {
  const [shell] = argv;
  if (shell === '--help' || shell === '-h') {
    process.stdout.write(COMPLETION_USAGE);
    return 0;
  }
  const flags = await commandFlags();
  if (shell === 'bash') process.stdout.write(bash(flags));
  // zsh runs the bash function through its bashcompinit layer.
  else if (shell === 'zsh')
    process.stdout.write(`#compdef scan-backends\nautoload -U +X bashcompinit && bashcompinit\n${bash(flags)}`);
  else if (shell === 'fish') process.stdout.write(fish(flags));
  else throw new UsageError(`completion: expected bash, zsh or fish, got "${shell ?? ''}"`);
  return 0;
}
