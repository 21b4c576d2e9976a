#!/usr/bin/env python3
"""An SMTP server on loopback that waits before every reply, as a relay tens of
milliseconds away does; it accepts and discards everything and counts the
messages. Used by bench.py for the slow-server curve.

    python3 bench/slow_smtp.py --port 2626 --delay-ms 20

Prints one line, "messages N", to stdout when it gets SIGTERM."""
import argparse
import asyncio
import signal
import sys

MESSAGES = 0


async def session(reader, writer, delay):
    global MESSAGES

    async def reply(line):
        await asyncio.sleep(delay)
        writer.write(line.encode() + b"\r\n")
        await writer.drain()

    try:
        await reply("220 slow.bench.example ESMTP")
        while True:
            line = await reader.readline()
            if not line:
                return
            verb = line[:4].upper()
            if verb in (b"EHLO", b"HELO"):
                await reply("250-slow.bench.example\r\n250-8BITMIME\r\n250-SMTPUTF8\r\n250 SIZE 52428800")
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
                await reply("250 2.0.0 ok")
    except (ConnectionError, asyncio.IncompleteReadError):
        pass
    finally:
        writer.close()


async def main():
    parser = argparse.ArgumentParser()
    parser.add_argument("--port", type=int, required=True)
    parser.add_argument("--delay-ms", type=float, default=20)
    args = parser.parse_args()
    delay = args.delay_ms / 1000
    server = await asyncio.start_server(lambda r, w: session(r, w, delay), "127.0.0.1", args.port, backlog=256)
    stop = asyncio.Event()
    asyncio.get_running_loop().add_signal_handler(signal.SIGTERM, stop.set)
    print("ready", flush=True)
    async with server:
        await stop.wait()
    print(f"messages {MESSAGES}", flush=True)
    sys.exit(0)


if __name__ == "__main__":
    asyncio.run(main())
