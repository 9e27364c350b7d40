# The two commands of the README. Both set up what they need first.
.PHONY: run test bench

run:
	@scripts/setup.sh
	.venv/bin/xiuxian-realtime serve --host 127.0.0.1 --port 3000 --data-dir ./data

test:
	@scripts/setup.sh --test
	@scripts/test.sh

bench:
	@scripts/setup.sh --test
	.venv/bin/python -m bench.run
