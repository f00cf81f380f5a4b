import assert from 'node:assert/strict';
import { describe, it } from 'node:test';
import { splitCommand } from './command.js';
import { InputError } from './errors.js';

describe('splitCommand', () => {
  it('splits on whitespace', () => {
    assert.deepEqual(splitCommand('node  server.js\t--port 80\n'), ['node', 'server.js', '--port', '80']);
  });

  it('groups quoted words and keeps empty quoted words', () => {
    assert.deepEqual(splitCommand(`echo 'a b' "c d" '' x"y z"w`), ['echo', 'a b', 'c d', '', 'xy zw']);
  });

  it('handles backslash escapes outside quotes and inside double quotes only', () => {
    assert.deepEqual(splitCommand('echo a\\ b "q\\"uote" \'s\\n\''), ['echo', 'a b', 'q"uote', 's\\n']);
  });

  it('keeps shell metacharacters as literal argv words: no shell, no injection', () => {
    assert.deepEqual(splitCommand('node a.js; rm -rf /'), ['node', 'a.js;', 'rm', '-rf', '/']);
    assert.deepEqual(splitCommand('node $(x) `id` ${HOME} $PATH'), ['node', '$(x)', '`id`', '${HOME}', '$PATH']);
    assert.deepEqual(splitCommand('cat a | nc evil 1 > /etc/passwd < in && b || c & d'), ['cat', 'a', '|', 'nc', 'evil', '1', '>', '/etc/passwd', '<', 'in', '&&', 'b', '||', 'c', '&', 'd']);
    assert.deepEqual(splitCommand('echo ~ *.js "$(whoami)"'), ['echo', '~', '*.js', '$(whoami)']);
  });

  it('refuses an empty command, naming the field', () => {
    assert.throws(() => splitCommand('   ', 'services.web.command'), { message: 'services.web.command: the command is empty' });
    assert.throws(() => splitCommand(''), InputError);
  });

  it('refuses an unterminated quote', () => {
    assert.throws(() => splitCommand('node "a.js'), { message: 'command: unterminated " quote in "node \\"a.js"' });
  });

  it('refuses a NUL byte', () => {
    assert.throws(() => splitCommand('node a\0b'), { message: 'command: the command contains a NUL byte' });
  });
});
