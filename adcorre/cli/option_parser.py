"""The parser every command builds: argparse's, with a suggestion for a misspelt option.

Python 3.11's argparse names an unknown option (`unrecognized arguments: --imgae x.jpg`) but
suggests nothing (`suggest_on_error` came later, and only for choices); `OptionParser` adds the
closest of its own options to that message. It imports nothing of the package, so every
command's options module (`cli.weights` too, low in the import order) can build one.
"""

import argparse
import difflib


class OptionParser(argparse.ArgumentParser):
    """Every command's parser: argparse's, with a suggestion for a misspelt option.

    `--imgae x.jpg` is refused as argparse refuses it (`unrecognized arguments: --imgae x.jpg`)
    and the message goes on with the parser's closest options (`; did you mean --image?`):
    Python 3.11's argparse has no `suggest_on_error`.

    Example:
    >>> parser = OptionParser(prog="adcorre test")
    >>> _ = parser.add_argument("--image")
    >>> parser.suggestion(["--imgae", "x.jpg"])
    '; did you mean --image?'
    """

    def error(self, message):
        prefix = "unrecognized arguments: "
        if message.startswith(prefix):
            message += self.suggestion(message[len(prefix):].split())
        super().error(message)

    def suggestion(self, unknown):
        """`"; did you mean --x?"`: for each word of `unknown` that is an option (a value such as
        `x.jpg` is not), this parser's closest option where one is close; `""` where none is."""
        options = [flag for flag in self._option_string_actions if flag.startswith("--")]
        close = {}
        for word in unknown:
            flag = word.split("=", 1)[0]
            matches = difflib.get_close_matches(flag, options, n=1) if flag[:1] == "-" else []
            if matches:
                close[flag] = matches[0]
        if not close:
            return ""
        if len(close) == 1:
            return f"; did you mean {next(iter(close.values()))}?"
        return "; did you mean " + ", ".join(f"{match} for {flag}"
                                            for flag, match in close.items()) + "?"
