import { describeScannerContract } from '../helpers/scanner-contract.js';

describeScannerContract('native');
// Linux builds the portable poll(2) backend too, so it is tested here, not only on exotic OSes.
describeScannerContract('native', 'poll');
describeScannerContract('js');
