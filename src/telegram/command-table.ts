/**
 * What allowed users can do in Telegram, as two tables: commands (`/name args`) and button taps
 * (`action:…`), each entry a handler that returns the words for the person. Handlers throw typed
 * errors; the gate's one error boundary renders them. Authorisation happened before any handler
 * runs, so no handler checks it.
 */
import type { Commands } from '../runtime/commands';
import type { ScanReport } from '../runtime/scheduler';
import type { CardAction } from '../proposal/card-renderer';
import { escapeHtml, formatTime } from '../proposal/card-renderer';
import { InputError } from '../errors';
import { renderHelp, renderPending, renderPnl, renderPositions, renderStatus } from './format';

/** An allowed person's command, with the principal it acts as. */
export interface CommandRequest {
  chatId: number | string;
  /** The principal: `tg:<user id>`. */
  by: string;
  args: string[];
}

/** What a command answers: a reply (HTML), or a message with buttons whose id the handler wants back. */
export type CommandOutcome =
  | { reply: string }
  | { reply: string; keyboard: Array<Array<{ text: string; callback_data: string }>>; sent?: (messageId: number) => void };

/** A button tap's answer (a callback answer: plain text; `alert` shows it as a dialog). */
export interface TapOutcome {
  text: string;
  alert?: boolean;
}

/** What the tables act on: the command core, and the gate's liquidation confirmation. */
export interface CommandTableDeps {
  commands: Commands;
  timeZone: string;
  scan?: (symbol?: string) => Promise<ScanReport>;
  /** Asks for a liquidation confirmation: a nonce for the button, and when it expires. */
  liquidationPrompt: () => { nonce: string; seconds: number; sent: (messageId: number) => void };
  /** Runs a confirmed liquidation for `nonce` (or says it expired). */
  confirmLiquidation: (nonce: string, by: string, where: TapPlace) => Promise<TapOutcome>;
}

export type CommandHandler = (req: CommandRequest) => Promise<CommandOutcome>;
/** Where a tap happened (its message, when Telegram sent it along). */
export interface TapPlace {
  chatId: number | string;
  messageId?: number;
}
/** One handler per kind of button, each given its own kind of action. */
export type TapTable = {
  [K in CardAction['action']]: (action: CardAction & { action: K }, by: string, where: TapPlace) => Promise<TapOutcome>;
};

const reply = (text: string): CommandOutcome => ({ reply: text });
/** As `POST /api/arm`: at most a day. */
const ARM_MAX_MINUTES = 24 * 60;

/** The commands allowed users may send, by name (`start` is Telegram's first message, answered as help). */
export function commandTable(deps: CommandTableDeps): Record<string, CommandHandler> {
  const { commands } = deps;
  const help: CommandHandler = async () => reply(renderHelp());
  return {
    help,
    start: help,
    status: async () => reply(renderStatus(commands.status())),
    pending: async () => reply(renderPending(commands.pending(), deps.timeZone)),
    positions: async () => reply(renderPositions(commands.portfolio())),
    pnl: async () => reply(renderPnl(commands.portfolio())),
    pause: async ({ by }) => reply((await commands.pause(by)).changed ? '⏸ Paused: new signals are recorded and dropped until /resume.' : 'Already paused.'),
    resume: async ({ by }) => reply((await commands.resume(by)).changed ? '▶️ Resumed: signals make proposals again.' : 'Not paused.'),
    scan: async ({ args }) => {
      if (!deps.scan) return reply('Scanning is not configured.');
      const report = await deps.scan(args[0]);
      const lines = [`🔎 Scanned ${report.scanned.length} symbol(s): ${escapeHtml(report.scanned.join(', ') || 'none')}`];
      lines.push(report.proposals.length > 0 ? `Proposals: ${report.proposals.map((p) => `<code>${p}</code>`).join(', ')}` : 'No proposals.');
      for (const s of report.skipped.slice(0, 10)) lines.push(`• ${escapeHtml(s.symbol)}: ${escapeHtml(s.reason)}`);
      return reply(lines.join('\n'));
    },
    approve: async ({ args, by }) => {
      const id = args[0];
      if (!id) return reply('Usage: /approve &lt;proposal id&gt;');
      const r = await commands.approve(id, by);
      return reply(r.counted ? `Approved <code>${escapeHtml(id)}</code> (${r.view.state}).` : 'You have already approved this proposal.');
    },
    reject: async ({ args, by }) => {
      const id = args[0];
      if (!id) return reply('Usage: /reject &lt;proposal id&gt; [reason]');
      await commands.reject(id, by, args.slice(1).join(' ').slice(0, 300) || 'rejected in Telegram');
      return reply(`Rejected <code>${escapeHtml(id)}</code>.`);
    },
    arm: async ({ args, by }) => {
      const minutes = Number(args[0]);
      if (!/^\d+$/.test(args[0] ?? '') || minutes < 1 || minutes > ARM_MAX_MINUTES) {
        throw new InputError('invalid_minutes', `Usage: /arm <minutes>, a whole number from 1 to ${ARM_MAX_MINUTES}: live orders go out until then`);
      }
      const state = await commands.arm(by, minutes);
      const until = state.armedUntil ? formatTime(state.armedUntil, deps.timeZone) : '?';
      return reply(state.mode === 'live'
        ? `🔓 Live trading armed until ${until}. Approved orders go to the venue; /disarm ends it.`
        : `🔓 Armed until ${until}. This service trades on paper: arming changes nothing until it runs live.`);
    },
    disarm: async ({ by }) => {
      const state = await commands.disarm(by);
      return reply(state.mode === 'live'
        ? '🔒 Disarmed: approved entries and exits run dry at the venue (or fail where it has no dry run); liquidations still go out.'
        : '🔒 Disarmed.');
    },
    liquidate: async () => {
      const prompt = deps.liquidationPrompt();
      return {
        reply: `🚨 <b>Sell every open position?</b>\nThis confirmation expires in ${prompt.seconds} s.`,
        keyboard: [[{ text: '⚠️ Confirm liquidation', callback_data: `liquidate:${prompt.nonce}` }]],
        sent: prompt.sent,
      };
    },
  };
}

/** The buttons allowed users may tap, by kind: approve, approve half, reject, confirm liquidation. */
export function tapTable(deps: CommandTableDeps): TapTable {
  const { commands } = deps;
  const approve = (fraction?: number) => async (action: { proposalId: string }, by: string): Promise<TapOutcome> => {
    const result = await commands.approve(action.proposalId, by, fraction);
    if (!result.counted) return { text: 'You have already approved this proposal.' };
    const v = result.view;
    return { text: v.state === 'awaiting-approval' ? `Approval recorded (${v.approvals.length}/${v.requiredApprovals}); another person must approve.` : 'Approved.' };
  };
  return {
    approve: approve(),
    half: approve(0.5),
    reject: async (action, by) => {
      await commands.reject(action.proposalId, by, 'rejected in Telegram');
      return { text: 'Rejected.' };
    },
    liquidate: async (action, by, where) => deps.confirmLiquidation(action.nonce, by, where),
  };
}
