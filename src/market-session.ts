/**
 * A market's trading session (KIS_MARKET_HOURS): the days and the local times between which a
 * venue's orders may be sent, in the market's own time zone. Pure: parsing and "is it open at
 * this instant" only.
 */

const DAY_NAMES = ['sun', 'mon', 'tue', 'wed', 'thu', 'fri', 'sat'] as const;

export interface MarketSession {
  /** Days the session runs, 0 = Sunday … 6 = Saturday (in `timeZone`). */
  days: number[];
  /** Minutes after local midnight: the session is open from `openMinute` up to, not including, `closeMinute`. */
  openMinute: number;
  closeMinute: number;
  timeZone: string;
  /** As written, for messages: `Mon-Fri 09:00-15:30 Asia/Seoul`. */
  text: string;
}

function minuteOf(hhmm: string, allow24: boolean): number | undefined {
  const m = /^(\d{2}):(\d{2})$/.exec(hhmm);
  if (!m) return undefined;
  const [h, min] = [Number(m[1]), Number(m[2])];
  if (min > 59 || h > 24 || (h === 24 && (min !== 0 || !allow24))) return undefined;
  return h * 60 + min;
}

function dayOf(name: string): number | undefined {
  const i = DAY_NAMES.indexOf(name.toLowerCase() as (typeof DAY_NAMES)[number]);
  return i < 0 ? undefined : i;
}

/** Days as written: `Mon-Fri`, `Mon-Sun`, `Mon,Wed,Fri`, `Sat`. */
function parseDays(text: string): number[] | undefined {
  const days = new Set<number>();
  for (const part of text.split(',')) {
    const range = /^([a-z]{3})-([a-z]{3})$/i.exec(part);
    if (range) {
      // Ranges run Monday to Sunday, as a trading week does (Mon-Sun is every day).
      const [from, to] = [dayOf(range[1]!), dayOf(range[2]!)].map((d) => (d === 0 ? 7 : d));
      if (from === undefined || to === undefined || to < from) return undefined;
      for (let d = from; d <= to; d++) days.add(d % 7);
    } else {
      const d = dayOf(part);
      if (d === undefined) return undefined;
      days.add(d);
    }
  }
  return [...days].sort((a, b) => a - b);
}

/**
 * Parses `[DAYS ]HH:MM-HH:MM` (days default to Mon-Fri; the close may be 24:00); an error
 * message when the text is not one.
 */
export function parseMarketSession(text: string, timeZone: string): MarketSession | string {
  const m = /^(?:([A-Za-z,-]+)\s+)?(\d{2}:\d{2})-(\d{2}:\d{2})$/.exec(text.trim());
  if (!m) return 'must be HH:MM-HH:MM, optionally after the days (e.g. 09:00-15:30 or Mon-Fri 09:00-15:30)';
  const days = m[1] === undefined ? [1, 2, 3, 4, 5] : parseDays(m[1]);
  if (!days || days.length === 0) return 'the days must be three-letter day names, as a range (Mon-Fri) or a list (Mon,Wed)';
  const [openMinute, closeMinute] = [minuteOf(m[2]!, false), minuteOf(m[3]!, true)];
  if (openMinute === undefined || closeMinute === undefined) return 'times must be HH:MM between 00:00 and 24:00';
  if (closeMinute <= openMinute) return 'the session must close after it opens (on the same day)';
  const dayText = m[1] === undefined ? 'Mon-Fri' : m[1];
  return { days, openMinute, closeMinute, timeZone, text: `${dayText} ${m[2]}-${m[3]} ${timeZone}` };
}

/** One formatter per zone: building one costs far more than using it, and every order and risk round asks. */
const formatters = new Map<string, Intl.DateTimeFormat>();

/** The local weekday (0 = Sunday) and minute of the day of `at` in `timeZone`. */
function localTime(at: number, timeZone: string): { day: number; minute: number } {
  let format = formatters.get(timeZone);
  if (!format) {
    format = new Intl.DateTimeFormat('en-US', { timeZone, weekday: 'short', hour: '2-digit', minute: '2-digit', hourCycle: 'h23' });
    formatters.set(timeZone, format);
  }
  const parts = format.formatToParts(new Date(at));
  const part = (type: string) => parts.find((p) => p.type === type)?.value ?? '';
  return { day: dayOf(part('weekday')) ?? -1, minute: Number(part('hour')) * 60 + Number(part('minute')) };
}

/** Whether the session is open at `at` (epoch ms). */
export function isSessionOpen(session: MarketSession, at: number): boolean {
  const { day, minute } = localTime(at, session.timeZone);
  return session.days.includes(day) && minute >= session.openMinute && minute < session.closeMinute;
}
