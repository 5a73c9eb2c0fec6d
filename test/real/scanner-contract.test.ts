import { describeScannerContract } from '../helpers/scanner-contract.js';

describeScannerContract('native');
describeScannerContract('js');
