// `scan-backends completion bash|zsh|fish`: a completion script made from the commands'
// own flag tables, so a new flag completes without anyone editing a script.
import { UsageError } from './exit-codes.js';
import { SCAN_FLAGS } from './scan-command.js';

export const COMPLETION_USAGE = `Usage: scan-backends completion bash|zsh|fish

Prints a shell completion script. Install it with, for example:
  scan-backends completion bash > ~/.local/share/bash-completion/completions/scan-backends
  scan-backends completion zsh  > "\${fpath[1]}/_scan-backends"
  scan-backends completion fish > ~/.config/fish/completions/scan-backends.fish
`;

type FlagTable = Readonly<Record<string, { readonly type: string; readonly short?: string }>>;

/** Each command and its flags (long and short), from the tables the parsers use. */
async function commandFlags(): Promise<Record<string, string[]>> {
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
  const names = (table: FlagTable) =>
    Object.entries(table).flatMap(([name, o]) => [`--${name}`, ...(o.short ? [`-${o.short}`] : [])]);
  return {
    scan: names(SCAN_FLAGS),
    probe: names(PROBE_COMMAND_FLAGS),
    resolve: names(RESOLVE_FLAGS),
    watch: names(WATCH_FLAGS),
    serve: names(SERVE_FLAGS),
    run: names(RUN_FLAGS),
    doctor: names(DOCTOR_FLAGS),
    demo: names(DEMO_FLAGS),
    plan: names(PLAN_FLAGS),
    announce: names(ANNOUNCE_FLAGS),
    help: [],
    completion: [],
  };
}

function bash(flags: Record<string, string[]>): string {
  const cases = Object.entries(flags)
    .map(
      ([cmd, list]) =>
        `    ${cmd}) words="${cmd === 'help' ? Object.keys(flags).join(' ') : cmd === 'completion' ? 'bash zsh fish' : list.join(' ')}" ;;`,
    )
    .join('\n');
  return `# bash completion for scan-backends (scan-backends completion bash)
_scan_backends() {
  local cur=\${COMP_WORDS[COMP_CWORD]} words
  if [ "$COMP_CWORD" -eq 1 ]; then
    words="${Object.keys(flags).join(' ')} --help --version"
  else
    case "\${COMP_WORDS[1]}" in
${cases}
    *) words="" ;;
    esac
  fi
  COMPREPLY=($(compgen -W "$words" -- "$cur"))
}
complete -F _scan_backends scan-backends
`;
}

function fish(flags: Record<string, string[]>): string {
  const lines = [
    '# fish completion for scan-backends (scan-backends completion fish)',
    `complete -c scan-backends -f -n __fish_use_subcommand -a '${Object.keys(flags).join(' ')}'`,
  ];
  for (const [cmd, list] of Object.entries(flags)) {
    for (const flag of list) {
      const option = flag.startsWith('--') ? `-l ${flag.slice(2)}` : `-s ${flag.slice(1)}`;
      lines.push(`complete -c scan-backends -f -n '__fish_seen_subcommand_from ${cmd}' ${option}`);
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
