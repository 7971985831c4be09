// The entry Pulumi.yaml names for a plain `pulumi up` (after `npm run build`): the same program, config from `pulumi config`.
import { pgdbProgram, readProgramConfig } from './program.js';

export default () => pgdbProgram(readProgramConfig());
