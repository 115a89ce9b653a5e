from hako.runtime.cli import run

run()
