# Sourced by the scripts: puts the project's own Node 24 (.tools/node, made by setup.sh) first
# on PATH when it exists, and defines node_ok (is the node on PATH new enough: >= 22.19).
_root="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
if [ -x "$_root/.tools/node/node_modules/.bin/node" ]; then
  PATH="$_root/.tools/node/node_modules/.bin:$PATH"
  export PATH
fi
node_ok() {
  node -e 'const [a,b]=process.versions.node.split(".").map(Number); process.exit(a>22||(a===22&&b>=19)?0:1)' 2>/dev/null
}
