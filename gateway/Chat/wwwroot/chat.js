// The chat page: new input interrupts the streaming answer, in two variants (EventSource and fetch
// with an AbortController), with a 300 ms debounce as in the article the project started from.
// The browser aborts its own stream when the user types; the gateway's supersede covers the cases
// where a client does not (another tab with the same ?session=, a slow network).

const DEBOUNCE_MS = 300;
const SAVINGS_POLL_MS = 1000;
// After a successful stop request the gateway ends the stream itself (request_stopped); if it has
// not within this long, the page aborts it so the button never leaves a stream running.
const STOP_GRACE_MS = 2000;
// On a resumable route (SessionStreams.Resume) every event carries an id: after a network error the page asks
// again with Last-Event-ID and the gateway sends the rest of the same answer, without generating it again.
const MAX_RESUMES = 5;
const RESUME_DELAY_MS = 250;

const { createApp } = Vue;

// Optional ?session=<id> lets two tabs share a session (to watch a server-side supersede);
// otherwise one random id per page load.
function sessionIdForPage() {
  const given = new URLSearchParams(location.search).get('session');
  if (given) return given;
  // getRandomValues works on plain http too, where crypto.randomUUID is missing.
  const bytes = crypto.getRandomValues(new Uint8Array(16));
  return 'chat-' + Array.from(bytes, b => b.toString(16).padStart(2, '0')).join('');
}

const KINDS = {
  done: 'finished',
  interrupted: 'interrupted by new input',
  superseded: 'superseded',
  stopped: 'stopped',
  error: 'failed',
};

function kindOfErrorType(type) {
  if (type === 'request_superseded') return 'superseded';
  if (type === 'request_stopped') return 'stopped';
  return 'error';
}

createApp({
  data() {
    return {
      sessionId: sessionIdForPage(),
      mode: new URLSearchParams(location.search).get('mode') === 'sse' ? 'sse' : 'fetch',
      model: 'default',
      prompt: '',
      answer: '',
      state: 'idle',
      turn: 0,
      marker: null,
      history: [],
      tokensSaved: 0,
      cancellations: 0,
      resumes: 0,
      resumedNote: '',
    };
  },

  computed: {
    busy() { return this.state === 'waiting' || this.state === 'streaming'; },
    stateText() {
      switch (this.state) {
        case 'idle': return 'Type to ask.';
        case 'waiting': return 'Waiting for you to pause typing…';
        case 'streaming': return 'Streaming…';
        default: return KINDS[this.state] ?? this.state;
      }
    },
  },

  created() {
    // Streams and timers live outside Vue's reactivity: only what the page shows is reactive.
    this.current = null;
    this.debounce = 0;
    this.pendingStop = null;
  },

  mounted() {
    // Closing the tab ends the answer at once: on a resumable route a dropped connection alone would only
    // detach it, and the model would write on for the route's window.
    window.addEventListener('pagehide', () => {
      if (this.current?.resumable) navigator.sendBeacon(this.cancelUrl());
    });
    this.loadModel();
    this.refreshSavings();
    this.poll = setInterval(() => {
      if (document.visibilityState === 'visible') this.refreshSavings();
    }, SAVINGS_POLL_MS);
    document.getElementById('prompt').focus();
  },

  unmounted() {
    clearInterval(this.poll);
  },

  methods: {
    async loadModel() {
      try {
        const response = await fetch('/v1/models');
        if (!response.ok) return;
        const body = await response.json();
        if (body?.data?.[0]?.id) this.model = body.data[0].id;
      } catch {
        // Keep the default; the field is editable.
      }
    },

    async refreshSavings() {
      try {
        const response = await fetch(`/v1/sessions/${encodeURIComponent(this.sessionId)}/savings`, { cache: 'no-store' });
        if (!response.ok) return;
        const body = await response.json();
        this.tokensSaved = body.tokensSaved ?? 0;
        this.cancellations = body.cancellations ?? 0;
      } catch {
        // The next poll tries again.
      }
    },

    cancelUrl() {
      return `/v1/sessions/${encodeURIComponent(this.sessionId)}/cancel`;
    },

    // Every keystroke: abort the running stream at once, then start a new one 300 ms after the last.
    typed() {
      // A resumable stream is stopped at the gateway, not only dropped here: a drop would merely detach it.
      // The next request waits for the stop, so that the stop can never reach the next stream.
      if (this.current?.resumable) this.pendingStop = fetch(this.cancelUrl(), { method: 'POST', keepalive: true }).catch(() => {});
      this.interrupt('interrupted', 'client_abort', 'new input: the page aborted this stream');
      clearTimeout(this.debounce);
      const prompt = this.prompt.trim();
      this.answer = '';
      this.marker = null;
      if (!prompt) {
        this.state = 'idle';
        return;
      }

      this.state = 'waiting';
      this.debounce = setTimeout(() => this.ask(prompt), DEBOUNCE_MS);
    },

    modeChanged() {
      this.interrupt('interrupted', 'client_abort', 'mode changed: the page aborted this stream');
      if (this.prompt.trim()) this.typed();
    },

    ask(prompt) {
      const turn = {
        id: ++this.turn,
        mode: this.mode,
        tokens: 0,
        ended: false,
        controller: new AbortController(),
        source: null,
        lastEventId: '',
        resumable: false,
        resumes: 0,
      };
      this.current = turn;
      this.answer = '';
      this.marker = null;
      this.resumes = 0;
      this.resumedNote = '';
      this.state = 'streaming';
      const stopped = this.pendingStop ?? Promise.resolve();
      this.pendingStop = null;
      stopped.then(() => {
        if (turn.ended) return;
        if (turn.mode === 'sse') this.streamSse(turn, prompt);
        else this.streamFetch(turn, prompt);
      });
    },

    append(turn, text) {
      if (turn.ended || turn !== this.current) return;
      turn.tokens++;
      this.answer += text;
    },

    // Records how a stream ended, once; only the current stream changes what the page shows.
    finish(turn, kind, type, message) {
      if (turn.ended) return;
      turn.ended = true;
      turn.controller.abort();
      turn.source?.close();
      const entry = { turn: turn.id, mode: turn.mode, kind, label: KINDS[kind], type, message, tokens: turn.tokens };
      if (turn === this.current) {
        this.state = kind;
        this.marker = kind === 'done' ? null : entry;
        this.current = null;
      }

      if (kind !== 'done') {
        this.history.unshift(entry);
        // The gateway records a cancellation right after the stream ends; the poll catches stragglers.
        this.refreshSavings();
      }
    },

    // The connection broke mid-answer and the page asks for the rest (fetch), or EventSource does by itself.
    resumed(turn) {
      turn.resumes++;
      if (turn !== this.current) return;
      this.resumes = turn.resumes;
      this.resumedNote = `reconnected after a network error, resumed after event ${turn.lastEventId}`;
    },

    interrupt(kind, type, message) {
      const turn = this.current;
      if (!turn) return;
      this.current = null;
      this.finish(turn, kind, type, message);
    },

    async stop() {
      clearTimeout(this.debounce);
      const turn = this.current;
      if (!turn) {
        this.state = 'idle';
        return;
      }

      let response = null;
      try {
        response = await fetch(this.cancelUrl(), { method: 'POST' });
      } catch {
        // Fall through to the browser-side abort.
      }

      if (response?.ok) {
        // The gateway ends the stream with a request_stopped event, which finish() shows.
        setTimeout(() => this.finish(turn, 'stopped', 'client_stop', 'the gateway did not end the stream; the page aborted it'), STOP_GRACE_MS);
      } else {
        // 404: nothing active for this session at the gateway (or no stop endpoint): stop here.
        const why = response ? `stop endpoint answered ${response.status}` : 'stop endpoint unreachable';
        this.finish(turn, 'stopped', 'client_stop', `${why}; the page aborted this stream`);
      }
    },

    // fetch + ReadableStream reader over OpenAI-style SSE; AbortController for the client-side abort. On a
    // resumable route, a network error mid-answer sends the same request again with Last-Event-ID.
    async streamFetch(turn, prompt) {
      const body = JSON.stringify({ model: this.model, stream: true, messages: [{ role: 'user', content: prompt }] });
      for (;;) {
        const outcome = await this.readFetch(turn, body);
        if (outcome === 'over' || turn.ended) return;
        // 'broken': the connection ended without the answer's end.
        if (!turn.lastEventId || turn.resumes >= MAX_RESUMES) {
          this.finish(turn, 'error', 'network_error', outcome.message ?? 'the stream ended without [DONE]');
          return;
        }

        this.resumed(turn);
        await new Promise(resolve => setTimeout(resolve, RESUME_DELAY_MS * turn.resumes));
        if (turn.ended) return;
      }
    },

    // One request of a fetch turn: 'over' when the turn has finished, else { message } for a broken connection.
    async readFetch(turn, body) {
      const headers = { 'Content-Type': 'application/json', 'X-Session-Id': this.sessionId };
      if (turn.lastEventId) headers['Last-Event-ID'] = turn.lastEventId;
      let response;
      try {
        response = await fetch('/v1/chat/completions', { method: 'POST', headers, body, signal: turn.controller.signal });
      } catch (e) {
        if (turn.lastEventId) return { message: String(e) };
        this.finish(turn, 'error', 'network_error', String(e));
        return 'over';
      }

      if (response.status === 204) {
        this.finish(turn, 'error', 'resume_unavailable', 'the gateway had nothing more of this answer');
        return 'over';
      }

      if (!response.ok) {
        // Superseded before the first byte, a resume the gateway could not serve (409 resume_unavailable), or any
        // other refusal: an OpenAI-style JSON error body.
        let type = `http_${response.status}`;
        let message = response.statusText;
        try {
          const error = await response.json();
          type = error?.error?.code === 'resume_unavailable' ? 'resume_unavailable' : error?.error?.type ?? type;
          message = error?.error?.message ?? message;
        } catch {
          // Not JSON; keep the status.
        }

        this.finish(turn, kindOfErrorType(type), type, message);
        return 'over';
      }

      const reader = response.body.pipeThrough(new TextDecoderStream()).getReader();
      let buffer = '';
      try {
        for (;;) {
          const { value, done } = await reader.read();
          if (done) break;
          buffer += value.replace(/\r\n?/g, '\n');
          let end;
          while ((end = buffer.indexOf('\n\n')) >= 0) {
            const event = buffer.slice(0, end);
            buffer = buffer.slice(end + 2);
            const lines = event.split('\n');
            const data = lines
              .filter(line => line.startsWith('data:'))
              .map(line => line.slice(line.startsWith('data: ') ? 6 : 5))
              .join('\n');
            if (data && this.onData(turn, data, chunk => chunk?.choices?.[0]?.delta?.content)) return 'over';
            // The id counts once its event has been read whole: a resume asks for what comes after it.
            const id = lines.find(line => line.startsWith('id:'));
            if (id !== undefined) {
              turn.lastEventId = id.slice(id.startsWith('id: ') ? 4 : 3);
              turn.resumable = true;
            }
          }
        }
      } catch (e) {
        return { message: String(e) };
      }

      return { message: 'the stream ended without [DONE]' };
    },

    // EventSource on the seed's GET route; the session id travels in the query. On a resumable route the events
    // carry ids, and EventSource reconnects by itself after a network error, sending Last-Event-ID.
    streamSse(turn, prompt) {
      const query = new URLSearchParams({ query: prompt, session_id: this.sessionId });
      const source = new EventSource(`/api/sse-stream?${query}`);
      turn.source = source;
      source.onmessage = e => {
        if (e.lastEventId) {
          turn.lastEventId = e.lastEventId;
          turn.resumable = true;
        }

        this.onData(turn, e.data, null);
      };
      source.onerror = () => {
        // Reconnecting with an id: the gateway resumes the same answer. A 204 (nothing to resume) closes it.
        if (turn.resumable && source.readyState === EventSource.CONNECTING && turn.resumes < MAX_RESUMES) {
          this.resumed(turn);
          return;
        }

        // A closed connection without [DONE]: close, or EventSource would reconnect and ask again.
        this.finish(turn, 'error', 'connection_closed',
          'the event stream closed without [DONE] (EventSource cannot read an error status)');
      };
    },

    // One SSE data payload. Returns true when the stream is over.
    onData(turn, data, contentOf) {
      if (data === '[DONE]') {
        this.finish(turn, 'done', 'done', '');
        return true;
      }

      if (data.startsWith('{')) {
        let parsed = null;
        try {
          parsed = JSON.parse(data);
        } catch {
          // Plain text that happens to start with a brace.
        }

        if (parsed?.error) {
          const type = parsed.error.type ?? 'error';
          this.finish(turn, kindOfErrorType(type), type, parsed.error.message ?? '');
          return true;
        }

        if (parsed && contentOf) {
          const text = contentOf(parsed);
          if (text) this.append(turn, text);
          return false;
        }
      }

      if (!contentOf) this.append(turn, data);
      return false;
    },
  },
}).mount('#app');
