"""Celery 5 side of the task benchmark (run by benches/tasks.rs).

Usage: python3 celery_bench.py REDIS_URL N
Prints key=value lines: enqueue rate from one process, consume rate of one
prefork worker (concurrency 1), and enqueue-to-start latency on an idle worker.
"""
import os
import subprocess
import sys
import tempfile
import textwrap
import time

url, n = sys.argv[1], int(sys.argv[2])
db_url = url.rsplit("/", 1)[0] + "/5"  # keep Celery's keys apart from pym's

work = tempfile.mkdtemp(prefix="pym-celery-")
with open(os.path.join(work, "benchapp.py"), "w") as f:
    f.write(textwrap.dedent(f"""
        import time
        from celery import Celery
        app = Celery("benchapp", broker={db_url!r})
        app.conf.worker_prefetch_multiplier = 4
        app.conf.task_ignore_result = True
        app.conf.broker_connection_retry_on_startup = True

        @app.task
        def noop(n):
            return None

        @app.task
        def probe(sent):
            import redis
            late = time.time() - sent
            redis.Redis.from_url({db_url!r}).rpush("celery:lat", late)
    """))
sys.path.insert(0, work)
import benchapp  # noqa: E402
import redis  # noqa: E402

r = redis.Redis.from_url(db_url)
r.flushdb()

t0 = time.time()
for i in range(n):
    benchapp.noop.delay(i)
enq = n / (time.time() - t0)

worker = subprocess.Popen(
    [sys.executable, "-m", "celery", "-A", "benchapp", "worker", "--pool=prefork",
     "--concurrency=1", "--loglevel=WARNING", "--without-gossip", "--without-mingle",
     "--without-heartbeat"],
    cwd=work, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL,
)
t0 = time.time()
while r.llen("celery") > 0 and time.time() - t0 < 600:
    time.sleep(0.01)
# The list empties when the last batch is prefetched; allow it to run.
time.sleep(0.2)
consume = n / (time.time() - t0)

lat_n = 500
for _ in range(lat_n):
    benchapp.probe.delay(time.time())
    time.sleep(0.002)
t0 = time.time()
while r.llen("celery:lat") < lat_n and time.time() - t0 < 60:
    time.sleep(0.05)
lat = sorted(float(x) * 1000 for x in r.lrange("celery:lat", 0, -1))
worker.terminate()
worker.wait(timeout=30)

def pct(p):
    return lat[min(len(lat) - 1, int(round((len(lat) - 1) * p)))] if lat else float("nan")

print(f"enqueue, one process={enq:.0f} tasks/s")
print(f"consume, one prefork worker={consume:.0f} tasks/s")
print(f"enqueue→start latency=p50 {pct(0.5):.3f} ms, p99 {pct(0.99):.3f} ms ({len(lat)} samples)")
