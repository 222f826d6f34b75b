import { describeRouteFuzz } from './everyRoute.js';

describeRouteFuzz(1, 2);
