/**
 * The proposal machine as data and as a Mermaid `stateDiagram-v2`, optionally with one
 * proposal's path and current state marked.
 */
import { proposalMachine, FINAL_STATES, type ProposalState } from '../../machines/proposal.machine';

export interface MachineStructure {
  id: string;
  initial: string;
  states: Array<{ name: string; final: boolean; transitions: Array<{ event: string; target: string }> }>;
}

function eventLabel(event: string): string {
  if (event.startsWith('xstate.done.actor.')) return `${event.slice('xstate.done.actor.'.length).replace(/^\d+\./, '')} done`;
  if (event.startsWith('xstate.error.actor.')) return `${event.slice('xstate.error.actor.'.length).replace(/^\d+\./, '')} error`;
  return event;
}

/** The machine's states and transitions, read from its definition. */
export function machineStructure(): MachineStructure {
  const root = proposalMachine.root;
  const states: MachineStructure['states'] = [];
  for (const [name, node] of Object.entries(root.states)) {
    const transitions: Array<{ event: string; target: string }> = [];
    for (const [event, list] of node.transitions) {
      for (const t of list) {
        for (const target of t.target ?? []) {
          const entry = { event: eventLabel(event), target: target.key };
          if (!transitions.some((x) => x.event === entry.event && x.target === entry.target)) transitions.push(entry);
        }
      }
    }
    // Invocations are named after their src in labels.
    for (const inv of node.invoke) {
      for (const t of transitions) t.event = t.event.replace(inv.id, String(inv.src));
    }
    states.push({ name, final: node.type === 'final', transitions });
  }
  return { id: root.id, initial: String(root.initial?.target[0]?.key ?? 'pending'), states };
}

const mermaidId = (state: string) => state.replace(/-/g, '_');

/** Mermaid stateDiagram-v2; with `path`, visited states and the current one are styled. */
export function mermaidDiagram(path?: { visited: ProposalState[]; current: ProposalState }): string {
  const s = machineStructure();
  const lines = ['stateDiagram-v2'];
  for (const st of s.states) if (st.name.includes('-')) lines.push(`  state "${st.name}" as ${mermaidId(st.name)}`);
  lines.push(`  [*] --> ${mermaidId(s.initial)}`);
  for (const st of s.states) {
    for (const t of st.transitions) lines.push(`  ${mermaidId(st.name)} --> ${mermaidId(t.target)}: ${t.event}`);
  }
  for (const f of FINAL_STATES) lines.push(`  ${mermaidId(f)} --> [*]`);
  if (path) {
    lines.push('  classDef visited fill:#dbeafe,stroke:#1d4ed8');
    lines.push('  classDef current fill:#fde68a,stroke:#b45309,stroke-width:3px');
    const visited = [...new Set(path.visited)].filter((v) => v !== path.current);
    if (visited.length > 0) lines.push(`  class ${visited.map(mermaidId).join(',')} visited`);
    lines.push(`  class ${mermaidId(path.current)} current`);
  }
  return `${lines.join('\n')}\n`;
}
