'use strict';
// The bench's reference relay: the leanest Infobip <-> ElevenLabs-agent relay there is.
//
// Why it exists: `make bench` reports the bridge's CPU per call-second as a ratio to this relay,
// measured in the same run under the same load, so the figure says how much our pacing, checks,
// barge-in and metrics cost over the bare job on this machine, whatever its speed or noise.
// It does only what any relay must: per media stream from Infobip it reads the first
// `websocket:connected` text frame, opens the agent's socket, sends the conversation initiation,
// then relays each binary caller frame as {"user_audio_chunk":"<base64>"} and each agent `audio`
// event's base64 back as one binary frame, and answers the agent's `ping` with a `pong`. No
// pacing, no validation, no metrics, permessage-deflate off on both sockets (the bridge has it
// off too; with it on, the relay's cost is compression's, not the relay's).
//
// Usage: node relay.js AGENT_URL   (or REFERENCE_AGENT_URL in the environment)
// Listens on 127.0.0.1, on REFERENCE_PORT or a free port, and prints `PORT <n>` once listening.

const { WebSocket, WebSocketServer } = require('ws');

const agentUrl = process.argv[2] || process.env.REFERENCE_AGENT_URL;
if (!agentUrl) {
  console.error('usage: node relay.js AGENT_URL (or set REFERENCE_AGENT_URL)');
  process.exit(2);
}

const server = new WebSocketServer({
  host: '127.0.0.1',
  port: Number(process.env.REFERENCE_PORT || 0),
  perMessageDeflate: false,
});

server.on('listening', () => {
  process.stdout.write(`PORT ${server.address().port}\n`);
});

server.on('connection', (phone) => {
  let agent = null;

  phone.on('message', (data, isBinary) => {
    if (isBinary) {
      if (agent !== null && agent.readyState === WebSocket.OPEN) {
        agent.send('{"user_audio_chunk":"' + data.toString('base64') + '"}');
      }
      return;
    }
    if (agent !== null) {
      return; // only the first text frame (websocket:connected) means anything here
    }
    let hello = {};
    try {
      hello = JSON.parse(data.toString());
    } catch (error) {
      // no checks: a relay this lean connects the agent whatever the first frame said
    }
    agent = new WebSocket(agentUrl, { perMessageDeflate: false });
    agent.on('open', () => {
      agent.send(JSON.stringify({
        type: 'conversation_initiation_client_data',
        dynamic_variables: { session_id: String(hello.session_id || '') },
      }));
    });
    agent.on('message', (message) => {
      const event = JSON.parse(message.toString());
      if (event.type === 'audio') {
        if (phone.readyState === WebSocket.OPEN) {
          phone.send(Buffer.from(event.audio_event.audio_base_64, 'base64'));
        }
      } else if (event.type === 'ping') {
        agent.send(JSON.stringify({ type: 'pong', event_id: event.ping_event.event_id }));
      }
    });
    agent.on('close', () => phone.close());
    agent.on('error', () => phone.terminate());
  });

  phone.on('close', () => {
    if (agent !== null) {
      agent.close();
    }
  });
  phone.on('error', () => {
    if (agent !== null) {
      agent.terminate();
    }
  });
});

process.on('SIGTERM', () => {
  for (const client of server.clients) {
    client.terminate();
  }
  server.close(() => process.exit(0));
  setTimeout(() => process.exit(0), 1000).unref();
});
