import type { Request, Response } from "express";
import { readPlan } from "../installer/upgrade/index.js";
import type { ConsoleContext } from "./context.js";
import type { ConsoleLogger } from "./app.js";
import { liveFragment } from "./pages/upgrade-runs.js";
import { pathId } from "./upgrade-facts.js";

export interface LiveLimits {
  /** How often a stream re-reads its run. */
  pollMs: number;
  /** How long one stream lasts before it is closed (the browser's EventSource opens a new one). */
  maxStreamMs: number;
  /** Streams open at once, all runs together; more are 503. */
  maxStreams: number;
}

export const DEFAULT_LIVE_LIMITS: LiveLimits = { pollMs: 500, maxStreamMs: 10 * 60_000, maxStreams: 20 };
const KEEP_ALIVE_MS = 15_000;

function eventText(event: string, data: string): string {
  return `event: ${event}\n${data
    .split("\n")
    .map((line) => `data: ${line}`)
    .join("\n")}\n\n`;
}

/**
 * A run's timeline over server-sent events: the run row re-read from the state every `pollMs`, and
 * its fragment (state line, SVG, gates) sent when it differs from the last one sent; `end` once the
 * run has ended, then the stream closes. Closed too when the client goes, or after `maxStreamMs`.
 */
export class RunLiveStreams {
  private open = 0;

  constructor(
    private readonly context: ConsoleContext,
    private readonly limits: LiveLimits,
    private readonly logger: ConsoleLogger | undefined,
  ) {}

  stream(request: Request, response: Response): void {
    const id = pathId(request.params.id, "run");
    const first = this.context.state.runs.get(id);
    if (this.open >= this.limits.maxStreams) {
      response
        .status(503)
        .set("Retry-After", "5")
        .type("text")
        .send("too many live timelines open: reload later");
      return;
    }
    const plan = readPlan(this.context.state, first.planId);
    this.open++;
    response.status(200).set({ "Content-Type": "text/event-stream", "X-Accel-Buffering": "no" });
    response.flushHeaders();
    response.write("retry: 2000\n\n");
    let last = "";
    let closed = false;
    const close = (): void => {
      if (closed) return;
      closed = true;
      this.open--;
      clearInterval(poll);
      clearInterval(keepAlive);
      clearTimeout(deadline);
      response.end();
    };
    const push = (): void => {
      try {
        const run = this.context.state.runs.get(id);
        const fragment = liveFragment(run, plan, this.context.timeZone).text;
        if (fragment !== last) {
          last = fragment;
          response.write(eventText("timeline", fragment));
        }
        if (run.state !== "running") {
          response.write(eventText("end", run.state));
          close();
        }
      } catch (error) {
        this.logger?.error({ err: error, run: id }, "console live timeline failed");
        close();
      }
    };
    const poll = setInterval(push, this.limits.pollMs);
    const keepAlive = setInterval(() => response.write(": keep-alive\n\n"), KEEP_ALIVE_MS);
    const deadline = setTimeout(close, this.limits.maxStreamMs);
    response.on("close", close);
    push();
  }
}
