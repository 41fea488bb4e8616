// Terminal output: colour only on a TTY and only without NO_COLOR (https://no-color.org).
const colour = process.stderr.isTTY === true && !process.env.NO_COLOR;
const paint = (code: string) => (s: string) => (colour ? `\x1b[${code}m${s}\x1b[0m` : s);

export const red = paint('31');
export const green = paint('32');
export const yellow = paint('33');
export const log = (s: string) => process.stderr.write(`${s}\n`);
