#!/usr/bin/env python3
"""An SMTP server on loopback that waits before every reply, as a relay tens of
milliseconds away does; it accepts and discards everything and counts the
messages. Used by bench.py for the slow-server curve.

    python3 bench/slow_smtp.py --port 2626 --delay-ms 20 [--pipelining]

With --pipelining it offers PIPELINING (RFC 2920) and answers each group of
commands that arrived together after one delay, as a distant relay's replies
to a group arrive together; a message then costs two delays, not four.

Prints one line, "messages N pipelined M", to stdout when it gets SIGTERM: M
is how many messages' MAIL, RCPT and DATA came as one group."""
import argparse
import asyncio
import signal
import sys

MESSAGES = 0
PIPELINED = 0


async def session(reader, writer, delay, pipelining):
    global MESSAGES, PIPELINED
    pending = []

    def more_waiting():
        # Commands already here arrived with the one just read: the same group.
        return pipelining and b"\n" in reader._buffer

    async def reply(line):
        pending.append(line.encode() + b"\r\n")
        if more_waiting():
            return
        await asyncio.sleep(delay)
        writer.write(b"".join(pending))
        pending.clear()
        await writer.drain()

    ehlo = ["250-slow.bench.example", "250-8BITMIME", "250-SMTPUTF8", "250 SIZE 52428800"]
    if pipelining:
        ehlo.insert(1, "250-PIPELINING")
    try:
        await reply("220 slow.bench.example ESMTP")
        while True:
            line = await reader.readline()
            if not line:
                return
            verb = line[:4].upper()
            if verb in (b"EHLO", b"HELO"):
                await reply("\r\n".join(ehlo))
            elif verb == b"DATA":
                await reply("354 end with <CRLF>.<CRLF>")
                while True:
                    body_line = await reader.readline()
                    if not body_line:
                        return
                    if body_line in (b".\r\n", b".\n"):
                        break
                MESSAGES += 1
                await reply("250 2.0.0 queued")
            elif verb == b"QUIT":
                await reply("221 2.0.0 bye")
                return
            else:  # MAIL, RCPT, RSET, NOOP
                if verb == b"MAIL" and b"DATA\r\n" in reader._buffer:
                    PIPELINED += 1
                await reply("250 2.0.0 ok")
    except (ConnectionError, asyncio.IncompleteReadError):
        pass
    finally:
        writer.close()


async def main():
    parser = argparse.ArgumentParser()
    parser.add_argument("--port", type=int, required=True)
    parser.add_argument("--delay-ms", type=float, default=20)
    parser.add_argument("--pipelining", action="store_true")
    args = parser.parse_args()
    delay = args.delay_ms / 1000
    server = await asyncio.start_server(lambda r, w: session(r, w, delay, args.pipelining), "127.0.0.1", args.port,
                                        backlog=256)
    stop = asyncio.Event()
    asyncio.get_running_loop().add_signal_handler(signal.SIGTERM, stop.set)
    print("ready", flush=True)
    async with server:
        await stop.wait()
    print(f"messages {MESSAGES} pipelined {PIPELINED}", flush=True)
    sys.exit(0)


if __name__ == "__main__":
    asyncio.run(main())
